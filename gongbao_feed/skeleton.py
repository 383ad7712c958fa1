"""Where the shipped config and templates live, and `init` of a working folder
(config, templates, folders, signing key, and the database at the newest schema)."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from .errors import GongbaoError
from .i18n import _

_PACKAGE = Path(__file__).resolve().parent
SECRET_FILE = "secret.key"


def skeleton_dir() -> Path:
    """The shipped config.toml and templates/: inside the wheel, or the source checkout."""
    packaged = _PACKAGE / "_skeleton"
    return packaged if packaged.is_dir() else _PACKAGE.parent


def builtin_templates() -> Path:
    return skeleton_dir() / "templates"


def init_folder(target: Path) -> list[Path]:
    """Make a self-contained working folder; refuse to overwrite a config."""
    target = target.resolve()
    config = target / "config.toml"
    if config.exists():
        raise GongbaoError(
            _("{config} already exists").format(config=config),
            hint=_("choose an empty folder, or edit that config"),
        )
    target.mkdir(parents=True, exist_ok=True)
    made = [config]
    shutil.copyfile(skeleton_dir() / "config.toml", config)
    templates = target / "templates"
    if not templates.exists():
        shutil.copytree(builtin_templates(), templates)
        made.append(templates)
    for name in ("inbox", "state", "issues", "public", "outbox"):
        (target / name).mkdir(exist_ok=True)
        made.append(target / name)
    # The database and the signing key live here: no one else may list or read it.
    (target / "state").chmod(0o700)
    made.append(write_secret(target / "state"))
    made += create_database(config)
    return made


def create_database(config_path: Path) -> list[Path]:
    """The store at the config's database URL, at the newest schema revision."""
    from .config import load_config
    from .store import Store, sqlite_file

    url = load_config(config_path).database_url
    Store(url).close()
    path = sqlite_file(url)
    return [path] if path is not None else []


def write_secret(state_dir: Path) -> Path:
    """A random signing key for unsubscribe links, readable by the owner only."""
    path = state_dir / SECRET_FILE
    if not path.exists():
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    return path
