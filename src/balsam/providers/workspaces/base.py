"""The workspace provider contract.

A workspace provider runs one JupyterLab server per workspace and tells the
control plane where to reach it. The control plane owns everything else
(database state, credentials, audit); a provider only turns a
:class:`WorkspaceSpec` into a running server and back.

==================  =====================================================
call                contract
==================  =====================================================
``start(spec)``     Blocking (the control plane calls it from a worker
                    thread): prepare the home (first start: clone the
                    repository, write git identity and credential helper),
                    build or reuse the template's environment, start the
                    server and return once it answers. Raises
                    :class:`WorkspaceStartError` with a reason users can
                    read. Idempotent for a running workspace.
``stop(id)``        Stop the server, keep the home. Idempotent.
``delete(id)``      Stop the server and remove the home. Idempotent.
``probe(id)``       Is the server alive? ``Probe.reason`` says why not.
``endpoint(id)``    Where the proxy sends requests (None when not running).
``activity(id)``    Last kernel/terminal activity reported by the server.
``running()``       Ids of servers found alive (re-attach after restart).
==================  =====================================================

Secrets (S3 secret key, git token, the server's own token) arrive in
:class:`WorkspaceSecrets` and must reach the server only through its
environment or files readable by the workspace alone: never process
arguments, logs or URLs.
"""

from __future__ import annotations

import abc
import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import ClassVar

from balsam.errors import BalsamError


class WorkspaceStartError(BalsamError):
    """A workspace could not be started; ``message`` is shown to its owner."""

    status = 500
    reason = "workspace-start-failed"


@dataclass(frozen=True)
class ResourceLimits:
    """What one workspace may use. ``memory_mib`` is enforced by every provider."""

    memory_mib: int
    cpu: float


def r_package() -> Path:
    """The source of Balsam's R package ``balsam``, installed into every R environment."""
    return Path(str(resources.files("balsam.data") / "r" / "balsam"))


@functools.cache
def r_recipe() -> str:
    """A hash of how the R part of an environment is built (the R package's files
    included), so a changed R package gives R environments a new version."""
    digest = hashlib.sha256(b"r-recipe=2")
    root = r_package()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class EnvironmentSpec:
    """A template's Python environment: pinned requirements, built once per version."""

    template_id: str
    requirements: tuple[str, ...]
    #: Debian packages the environment needs on the machine (checked at each start).
    system_packages: tuple[str, ...] = ()
    #: Whether it has an R kernel (IRkernel) and Balsam's R package ``balsam``.
    r: bool = False
    #: R packages from the installation's CRAN mirror, into the environment.
    cran_packages: tuple[str, ...] = ()

    #: Bumped when the way environments are built changes (e.g. byte-compiling), so
    #: that existing environments are rebuilt rather than reused.
    RECIPE: ClassVar[str] = "3"  # 3: balsam_user_site.pth (pip installs into homes)

    @property
    def version(self) -> str:
        """Short content hash: a new requirement list (or recipe) is a new environment."""
        lines = [f"recipe={self.RECIPE}", *sorted(self.requirements)]
        # Only where present: an environment without them keeps its version.
        lines += [f"deb={p}" for p in sorted(self.system_packages)]
        lines += [f"cran={p}" for p in sorted(self.cran_packages)]
        if self.r:
            lines.append(f"r={r_recipe()}")
        text = "\n".join(lines)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"{self.template_id}-{self.version}"


@dataclass(frozen=True)
class WorkspaceSecrets:
    """Credentials minted for one workspace. ``repr`` never shows them."""

    s3_access_key: str
    s3_secret_key: str
    git_username: str
    git_token: str
    server_token: str
    #: The project's data connections as ``BALSAM_CONN_*`` variables (secrets
    #: included), filled in for each start; never kept in the secret store.
    connection_env: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"WorkspaceSecrets(s3_access_key={self.s3_access_key!r})"


@dataclass(frozen=True)
class WorkspaceSpec:
    """Everything a provider needs to run one workspace."""

    workspace_id: str
    project_id: str
    branch: str
    owner_username: str
    owner_name: str
    owner_email: str
    environment: EnvironmentSpec
    limits: ResourceLimits
    #: URL path prefix the server is reached at through the proxy (``/workspaces/<id>/``).
    base_url: str
    #: Where the workspace clones and pushes the project repository.
    clone_url: str
    #: Non-secret environment variables (BALSAM_*, AWS_ENDPOINT_URL, ...).
    env: Mapping[str, str]
    secrets: WorkspaceSecrets
    #: Minutes without activity after which the supervisor stops it (the template's).
    idle_timeout_minutes: int = 60
    #: Extra labels for providers that keep metadata (Kubernetes).
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    """Where the proxy reaches a running server, and the token it presents.

    With ``socket`` (the local provider) every connection goes through that unix
    socket, and ``url`` only names the path and the ``Host`` header
    (``http://localhost/workspaces/<id>/``). A client must then refuse the
    connection unless the process listening on it runs as ``socket_uid``: the
    socket's folder belongs to the workspace's user, who could replace the
    socket with a link to a socket of root's. Without ``socket`` (Kubernetes),
    ``url`` is reached over TCP."""

    url: str
    token: str
    socket: str | None = None
    socket_uid: int | None = None

    def __repr__(self) -> str:
        return f"Endpoint(url={self.url!r}, socket={self.socket!r})"


@dataclass(frozen=True)
class Probe:
    alive: bool
    reason: str | None = None


#: Progress callback: ``progress("Building environment python-0123abcd")``.
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunSpec:
    """Everything a provider needs to run one recorded run (``execute_run``)."""

    run_id: str
    project_id: str
    environment: EnvironmentSpec
    limits: ResourceLimits
    #: The commit's tree as a tar archive (``git archive``): the scratch checkout.
    archive: bytes
    #: The plan the runner reads (``balsam/data/workspace/balsam_runner.py``).
    plan: Mapping[str, object]
    #: Non-secret environment variables (BALSAM_*, AWS_ENDPOINT_URL, ...).
    env: Mapping[str, str]
    #: The run's storage key (it writes only under the run's prefix).
    s3_access_key: str
    s3_secret_key: str = field(repr=False)


#: What a run's runner tells as it goes (one decoded JSON object per event).
RunEvents = Callable[[Mapping[str, object]], None]


class RunsUnsupported(WorkspaceStartError):
    """The workspace provider cannot run recorded runs."""

    status = 501
    reason = "runs-unsupported"


class WorkspaceProvider(abc.ABC):
    """Runs JupyterLab servers for workspaces."""

    #: Each workspace runs apart from Balsam's data and other workspaces (its own
    #: uid, its own pod). False: workspaces run as Balsam's own user and can read
    #: its data directory (a local provider not run as root).
    isolates_users: bool = True

    @abc.abstractmethod
    def start(self, spec: WorkspaceSpec, progress: Progress) -> Endpoint:
        """Start (or find running) the workspace's server; block until it answers."""

    @abc.abstractmethod
    def stop(self, workspace_id: str) -> None:
        """Stop the server; keep the home. Idempotent."""

    @abc.abstractmethod
    def delete(self, workspace_id: str) -> None:
        """Stop the server and remove its home. Idempotent."""

    @abc.abstractmethod
    def probe(self, workspace_id: str) -> Probe:
        """Whether the server is alive, and if not, why (exit status, memory limit)."""

    @abc.abstractmethod
    def endpoint(self, workspace_id: str) -> Endpoint | None:
        """The running server's address and token, or None."""

    @abc.abstractmethod
    def activity(self, workspace_id: str) -> datetime | None:
        """Last kernel or terminal activity the server reports, or None if unknown."""

    @abc.abstractmethod
    def running(self) -> list[str]:
        """Ids of workspaces whose servers are alive (found again after a restart)."""

    @abc.abstractmethod
    def stop_unknown(self, known: set[str]) -> list[str]:
        """Stop the servers of workspaces not in ``known`` (the ids Balsam still
        counts as pending or running), e.g. one a Balsam killed mid-stop left
        behind, or one of a workspace deleted meanwhile; return their ids. Homes
        are kept, as by ``stop``. Called once at start, by the supervisor."""

    @abc.abstractmethod
    def environment_lock(self, spec: EnvironmentSpec) -> dict[str, str] | None:
        """The exact package versions of a built environment (name → version), or
        None while it is not built."""

    def user_packages(self, workspace_id: str, environment: str) -> dict[str, str] | None:
        """name → version of the packages the user installed into the workspace's home
        beside its environment (named ``environment``); None where the provider cannot
        tell (the default)."""
        return None

    def execute_run(self, spec: RunSpec, events: RunEvents, cancelled: Callable[[], bool]) -> int:
        """Run ``spec``'s runner to its end, with the same isolation as a workspace,
        calling ``events`` with what it tells; block until it has ended and everything
        it started is gone; its exit status. When ``cancelled()`` turns true, stop it.
        Providers that cannot raise :class:`RunsUnsupported`."""
        raise RunsUnsupported("This installation's workspace provider does not run runs yet.")

    def clean_up_run(self, run_id: str) -> None:  # noqa: B027 - optional hook
        """Remove whatever of the run is left (processes, files, its user id) after its
        Balsam died while it ran. Idempotent."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; does not stop servers."""
