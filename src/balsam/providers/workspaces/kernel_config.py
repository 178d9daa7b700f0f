"""ipykernel configuration for workspace kernels. Not imported by Balsam: a
workspace's Python kernel runs this file as its config (``--config=...``, see
:func:`balsam.providers.workspaces.jupyter.write_kernel_spec`), before it opens
its sockets.

With ``KernelManager.transport=ipc`` a kernel's five channels are unix sockets
in the workspace's private runtime folder, but ipykernel still binds one more
socket to a TCP port on 127.0.0.1, whatever the transport: the pipe that
carries output of forked subprocesses (``multiprocessing``) back to the
notebook. Any local process can connect to it. This puts that pipe on IPC in
the same private folder (``JUPYTER_RUNTIME_DIR``), so a workspace opens no TCP
port at all. An ipykernel without these internals keeps its TCP pipe: the
transport test notices.

The kernel runs with ``python -P`` (see ``write_kernel_spec``): nothing is imported from
the notebook's folder while it starts, so a file there (``ipykernel_launcher.py``, or a
module ipykernel imports) that another project member committed does not run just
because a notebook was opened. Once the kernel has started, the folder goes back on
``sys.path``, last: a notebook imports its neighbours, but one named like an installed
module (``psutil.py``, which ipykernel imports when the kernel shuts down, ``jedi.py``
at the first completion) does not shadow it.
"""

from __future__ import annotations

import os
from typing import Any

import zmq
from ipykernel import iostream
from zmq.eventloop.zmqstream import ZMQStream

_RUNTIME_DIR = os.environ.get("JUPYTER_RUNTIME_DIR", "")


def _address(thread: Any) -> str:
    # One pipe per kernel process; forked children know their parent's pid.
    return f"ipc://{_RUNTIME_DIR}/kernel-{thread._master_pid}-pipe"


def _setup_pipe_in(self: Any) -> None:
    """The kernel's end: a PULL socket that accepts messages keyed with a random id."""
    self._pipe_uuid = os.urandom(16)
    pipe_in = self.socket.context.socket(zmq.PULL)
    pipe_in.linger = 0
    pipe_in.bind(_address(self))
    self._pipe_port = 0
    self._pipe_in = ZMQStream(pipe_in, self.io_loop)
    self._pipe_in.on_recv(self._handle_pipe_msg)


def _setup_pipe_out(self: Any) -> tuple[Any, Any]:
    """A forked child's end (a new context: a forked one cannot be used)."""
    context = zmq.Context()
    pipe_out = context.socket(zmq.PUSH)
    pipe_out.linger = 3000
    pipe_out.connect(_address(self))
    return context, pipe_out


_HOOKS = ("_setup_pipe_in", "_setup_pipe_out", "_handle_pipe_msg")
if _RUNTIME_DIR and all(hasattr(iostream.IOPubThread, name) for name in _HOOKS):
    iostream.IOPubThread._setup_pipe_in = _setup_pipe_in
    iostream.IOPubThread._setup_pipe_out = _setup_pipe_out


#: The notebook's folder back on sys.path after the start (``exec_lines`` run last), at
#: its end: one expression, so nothing is left in the user's namespace.
_PATH_BACK = "__import__('sys').path.append('')"
_config = globals().get("c")
if _config is not None:
    _config.InteractiveShellApp.exec_lines = [_PATH_BACK]
