"""Build hook: compile the message catalogs (.po → .mo) into every wheel.

The wheel carries `.mo` files compiled from the `.po` files at build time
with Babel (a build requirement only; at run time the standard library's
gettext reads the `.mo`). The `.mo` committed beside each `.po` serves a
source checkout and editable installs; tests/test_i18n.py fails when it is
stale. Editable builds compile nothing: they read the source tree.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CatalogBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        root = Path(self.root)
        self._tmp = tempfile.TemporaryDirectory(prefix="gongbao-mo-")
        out = Path(self._tmp.name)
        for po in sorted((root / "gongbao_feed" / "locale").glob("*/LC_MESSAGES/*.po")):
            with po.open("rb") as f:
                catalog = read_po(f, locale=po.parent.parent.name)
            target = po.relative_to(root).with_suffix(".mo")
            mo = out / target
            mo.parent.mkdir(parents=True, exist_ok=True)
            with mo.open("wb") as f:
                write_mo(f, catalog)  # fuzzy entries left out, as msgfmt does
            build_data["force_include"][str(mo)] = target.as_posix()

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            tmp.cleanup()
