"""``balsam`` on a local workspace's PATH: the data commands with the workspace's own
key (``balsam/data/workspace/balsam_cli.py``), run by the environment's Python.

Written at every start into ``<workspace>/bin/`` (0755, Balsam's: the workspace can run
it, not change it), so a new Balsam's script replaces an older one.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

SCRIPT = "balsam"


def write_cli(env_path: Path, folder: Path) -> Path:
    """Write the script for the environment at ``env_path`` into ``folder/bin``; that
    folder (for PATH)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(mode=0o755, exist_ok=True)
    bin_dir.chmod(0o755)
    body = resources.files("balsam.data").joinpath("workspace/balsam_cli.py").read_text("utf-8")
    # -I: neither PYTHON* variables, the user's site nor the current folder are used.
    text = f"#!{env_path / 'bin' / 'python'} -I\n{body}"
    target = bin_dir / SCRIPT
    scratch = bin_dir / f".{SCRIPT}.{os.getpid()}"
    scratch.write_text(text, encoding="utf-8")
    scratch.chmod(0o755)
    scratch.replace(target)
    return bin_dir
