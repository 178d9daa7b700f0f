"""Child processes that die with Balsam, however Balsam dies.

A Balsam killed with ``kill -9`` runs no handler and no ``finally``: only the
kernel can still end its children. Both helpers here rely on the kernel's
parent-death signal (``PR_SET_PDEATHSIG``), set by ``setpriv --pdeathsig`` as an
exec wrapper rather than by ``preexec_fn``, which is unsafe in a threaded
program. They return a new argument list; the caller starts it as before.

* :func:`dying_with_parent` for a command that starts no helpers of its own
  (weed, ``git ls-tree``): the command itself gets SIGKILL. It keeps its pid.
* :func:`group_dying_with_parent` for a command that starts helpers which would
  otherwise live on: ``git fetch`` over http leaves ``git-remote-http`` blocked
  on the network; ``git http-backend`` runs ``upload-pack`` and hooks; ``uv``
  runs build backends. A small shell leads the process group and SIGKILLs all
  of it when Balsam dies. The caller must start it as a new session (or
  group): ``start_new_session=True``.

The signal is sent when the *thread* that forked the child ends, not the
process. That is safe where the forking thread outlives the child: a
``subprocess.run`` blocks its thread until the child has ended; asyncio forks
from the event-loop thread, which lives as long as the server. A child that a
short-lived thread starts and another thread reads (a ``Popen`` inside a
generator that a thread pool steps through) must not use these helpers.

The kernel clears the signal when a process changes uid, so any change of uid
must happen before the wrapper runs (``subprocess``'s ``user=`` does; so does a
``setpriv --reuid`` placed outside it). Without ``setpriv`` (util-linux; not
every distribution installs it) commands run unwrapped and one WARNING says so.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Sequence

log = logging.getLogger(__name__)

# $1.. is the command. The shell leads its own process group (the caller made a
# new session), runs the command in the background so that it can react to
# SIGTERM, the parent-death signal it was given, by SIGKILLing the group: the
# command and every helper it started. The command itself also dies if the
# shell is SIGKILLed (e.g. by a caller's timeout). Not a group leader (the
# caller forgot the new session): killing the group would hit Balsam's own, so
# the shell becomes the command, which still dies with Balsam, alone. dash sends
# a background command's stdin to /dev/null unless it is redirected from
# another descriptor, hence fd 3. The shell keeps no copy of the pipes, so the
# caller sees end-of-file when the command ends. Exit status: the command's
# (128 + N when it was killed by signal N).
_GROUP_SCRIPT = """trap 'kill -KILL 0' TERM
read -r _ _ _ _ group _ < /proc/$$/stat
[ "$group" = "$$" ] || exec "$@"
exec 3<&0
"$@" <&3 3<&- &
exec 3<&- </dev/null >/dev/null 2>&1
wait "$!"
"""


@functools.cache
def _setpriv() -> str | None:
    """Path of ``setpriv``, looked up once; None (logged once) when missing."""
    found = shutil.which("setpriv")
    if found is None:
        log.warning(
            "no setpriv here (util-linux): child processes (git, uv, weed) "
            "may outlive a Balsam that is killed"
        )
    return found


def dying_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped to get SIGKILL when the thread that starts it ends.
    The wrapper execs the command: same pid, same exit status. Helpers the
    command starts are not covered (see :func:`group_dying_with_parent`)."""
    setpriv = _setpriv()
    if setpriv is None:
        return list(argv)
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


def group_dying_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so that it and every process it starts get SIGKILL
    when the thread that starts it ends. Start it with ``start_new_session=True``:
    its pid is then the group's, which ``os.killpg`` ends as a whole. The exit
    status is the command's (128 + N if killed by signal N)."""
    setpriv = _setpriv()
    if setpriv is None:
        return list(argv)
    return [
        setpriv,
        "--pdeathsig",
        "TERM",
        "--",
        "/bin/sh",
        "-c",
        _GROUP_SCRIPT,
        "balsam-child",
        *dying_with_parent(argv),
    ]
