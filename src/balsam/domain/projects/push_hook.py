"""The git receive hooks of Balsam's repositories (see :mod:`.pushes`).

git runs them as ``python -m balsam.domain.projects.push_hook pre-receive`` (or
``post-receive``) through the scripts :func:`ensure_hook_scripts` writes; Balsam's
git endpoint points ``core.hooksPath`` at them and passes the pusher's policy
and the push log's path in the environment. They read no database and no
setting: what they need arrives in their environment.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import balsam
from balsam.domain.projects.pushes import PushPolicy, RefUpdate, log_line, parse_updates

PUSH_LOG = "BALSAM_PUSH_LOG"
HOOKS = ("pre-receive", "post-receive")


def ensure_hook_scripts(folder: Path) -> Path:
    """Write (or refresh) the hook scripts in ``folder``; return it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    python = shlex.quote(sys.executable)
    # The very package that serves, wherever it was imported from.
    package_root = shlex.quote(str(Path(balsam.__file__).resolve().parent.parent))
    for hook in HOOKS:
        script = (
            f"#!/bin/sh\nPYTHONPATH={package_root} exec {python} "
            f"-m balsam.domain.projects.push_hook {hook}\n"
        )
        path = folder / hook
        if not path.exists() or path.read_text() != script:
            scratch = folder / f".{hook}.tmp"
            scratch.write_text(script)
            scratch.chmod(0o700)
            scratch.replace(path)
    return folder


def _is_ancestor(old: str, new: str) -> bool:
    # No parent-death wrapper (balsam.children) needed: the hook and this git run
    # in the process group of Balsam's ``git http-backend``, which dies as a whole
    # with Balsam.
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", old, new], capture_output=True, check=False
    )
    return done.returncode == 0


def _ref_exists(ref: str) -> bool:
    done = subprocess.run(
        ["git", "show-ref", "--verify", "--quiet", ref], capture_output=True, check=False
    )
    return done.returncode == 0


def pre_receive(updates: list[RefUpdate]) -> int:
    """Refuse the whole push if any update breaks a rule (git then changes nothing)."""
    policy = PushPolicy.from_environment(os.environ)
    if policy is None:
        print("balsam: pushes are accepted only through Balsam's git endpoint", file=sys.stderr)
        return 1
    refusals = [
        (u.ref, reason)
        for u in updates
        if (reason := policy.refusal(u, _is_ancestor, _ref_exists)) is not None
    ]
    for ref, reason in refusals:
        print(f"balsam: refused {ref}: {reason}", file=sys.stderr)
    return 1 if refusals else 0


def post_receive(updates: list[RefUpdate]) -> int:
    """Append the updates git made (with whether each was forced) to the push log."""
    log = os.environ.get(PUSH_LOG)
    if not log:
        return 0
    with open(log, "a", encoding="utf-8") as out:
        for u in updates:
            forced = not (u.creates or u.deletes) and not _is_ancestor(u.old, u.new)
            out.write(log_line(RefUpdate(u.old, u.new, u.ref, forced)))
    return 0


def main(argv: list[str]) -> int:
    updates = parse_updates(sys.stdin.read())
    if argv == ["pre-receive"]:
        return pre_receive(updates)
    if argv == ["post-receive"]:
        return post_receive(updates)
    print(f"usage: push_hook {'|'.join(HOOKS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
