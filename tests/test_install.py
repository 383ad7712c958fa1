"""The README's "Install for production", followed step by step by
`.ci/install-check` in a temporary folder: a wheel built from this clone in a
fresh venv without the test extras gives a working `gongbao-feed` (init, one
publish, serve answering one-click unsubscribe, the units verified).

It builds and installs for real, so it needs pip to reach a package index
(or its cache); about 40 s on the CI machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "install-check"


@pytest.mark.slow
def test_the_readme_install_gives_a_working_command(tmp_path: Path) -> None:
    assert os.access(SCRIPT, os.X_OK), f"{SCRIPT} is not executable"
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    assert proc.returncode == 0, f".ci/install-check failed:\n{tail}"
    steps = [line for line in proc.stderr.splitlines() if line.startswith("== ")]
    assert [s.split(".")[0] for s in steps] == [f"== {n}" for n in range(1, 7)], tail
    assert proc.stderr.rstrip().endswith("install-check: passed")
    assert "no test extras in the venv" in proc.stderr
    assert "one-click unsubscribe for" in proc.stderr
    assert list(tmp_path.iterdir()) == [], "install-check left files behind"
