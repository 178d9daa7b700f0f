"""Balsam: a self-hostable data-processing and analysis platform."""

import os

__version__ = "0.1.0"

# Balsam forks children (git as a workspace's user, JupyterLab) while gRPC's threads
# run; gRPC's fork handlers then make such a child crash between fork and exec
# (SIGSEGV, or an abort in gRPC's epoll poller): a workspace failed to start now and
# then. No child of Balsam uses gRPC, so the handlers are off. gRPC reads this when
# it is imported, hence here, before any module of Balsam's can import it.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"
