"""The workspace supervisor: runs starts and stops in the background, watches
running servers, culls idle ones, and re-attaches after a restart.

Requests never wait for a server: the service marks a workspace ``pending``
and submits it here; a worker thread builds its spec, calls the provider and
records ``running`` or ``failed`` with the reason. One operation at a time per
workspace (a lock each). A periodic check marks servers that died as
``failed`` (with the provider's reason, e.g. memory), records kernel and
terminal activity, and stops workspaces idle longer than their template's
idle timeout (the home is kept).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from balsam.context import AppContext
from balsam.db.models import Project, Workspace
from balsam.domain.audit.service import AuditRecord
from balsam.domain.data.connections.service import ConnectionService
from balsam.errors import BalsamError
from balsam.providers.workspaces.base import Probe, WorkspaceSpec, WorkspaceStartError

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class WorkspaceSupervisor:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="workspace")
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._futures: set[Future[None]] = set()
        #: Set for a restart in place (``balsam restart``): shutdown leaves workspaces
        #: running for the next process to re-attach.
        self.keep_workspaces = False

    # -- lifecycle of the supervisor itself ---------------------------------------------

    def start(self) -> None:
        """Re-attach to servers left running, then check them periodically."""
        self.reattach()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="workspace-supervisor", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the periodic check runs (started and not shut down)."""
        return self._thread is not None and self._thread.is_alive()

    def shutdown(self) -> None:
        """Stop checking; stop every workspace if the settings say so (never for a
        restart in place: ``keep_workspaces``)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.ctx.settings.workspaces.stop_on_shutdown and not self.keep_workspaces:
            with self.ctx.sessions() as session:
                ids = session.scalars(
                    select(Workspace.id).where(Workspace.state.in_(("pending", "running")))
                ).all()
            for workspace_id in ids:
                self.submit_stop(workspace_id, "Balsam was stopped")
        self.wait()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for submitted operations to finish (tests, shutdown)."""
        for future in list(self._futures):
            future.exception(timeout)

    # -- submitting ---------------------------------------------------------------------

    def _lock(self, workspace_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(workspace_id, threading.Lock())

    def _submit(self, fn: Callable[[str], None], workspace_id: str) -> None:
        def run() -> None:
            with self._lock(workspace_id):
                fn(workspace_id)

        future = self._executor.submit(run)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    def submit_start(self, workspace_id: str) -> None:
        self._submit(self._start, workspace_id)

    def submit_stop(self, workspace_id: str, reason: str) -> None:
        self._submit(lambda wid: self._stop(wid, reason), workspace_id)

    def forget(self, workspace_id: str) -> None:
        """Wait for the workspace's running operation (before deleting it)."""
        with self._lock(workspace_id):
            pass

    # -- state --------------------------------------------------------------------------

    def _set(
        self, workspace_id: str, only_if: tuple[str, ...] | None = None, **values: object
    ) -> bool:
        with self.ctx.sessions() as session, session.begin():
            stmt = update(Workspace).where(Workspace.id == workspace_id).values(**values)
            if only_if is not None:
                stmt = stmt.where(Workspace.state.in_(only_if))
            return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]

    def _audit(
        self, workspace: Workspace, action: str, outcome: str = "success", **details: object
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor="system",
                action=action,
                outcome=outcome,  # type: ignore[arg-type]
                target=f"project:{workspace.project_id}/workspace:{workspace.id}",
                project_id=workspace.project_id,
                details=dict(details),
            )
        )

    # -- operations ---------------------------------------------------------------------

    def spec(self, workspace: Workspace, bucket: str) -> WorkspaceSpec | None:
        secrets = self.ctx.workspace_secrets.load(workspace.id)
        template = self.ctx.templates.get(workspace.template_id)
        if secrets is None or template is None:
            return None
        storage = self.ctx.providers.storage
        settings = self.ctx.settings
        env = {
            "AWS_ENDPOINT_URL": storage.endpoint_url,
            "AWS_DEFAULT_REGION": storage.region,
            "JUPYTERLAB_S3_ENDPOINT": storage.endpoint_url,
            "BALSAM_PROJECT": workspace.project_id,
            "BALSAM_BRANCH": workspace.branch,
            "BALSAM_BUCKET": bucket,
            "BALSAM_DATA_PREFIX": f"{workspace.branch}/",
            "BALSAM_WORKSPACE": workspace.id,
        }
        owner = workspace.owner
        # The project's connections as they are now: a connection deleted since the
        # last start is gone, one added since is there.
        connections = ConnectionService(self.ctx).workspace_environment(workspace.project_id)
        secrets = dataclasses.replace(secrets, connection_env=connections)
        return WorkspaceSpec(
            workspace_id=workspace.id,
            project_id=workspace.project_id,
            branch=workspace.branch,
            owner_username=owner.username,
            owner_name=owner.display_name or owner.username,
            owner_email=owner.email or f"{owner.username}@balsam.invalid",
            environment=template.environment,
            limits=template.limits,
            base_url=f"/workspaces/{workspace.id}/",
            clone_url=f"{settings.resolved_control_plane_url}/git/{workspace.project_id}.git",
            env=env,
            secrets=secrets,
            idle_timeout_minutes=template.idle_timeout_minutes,
        )

    def _start(self, workspace_id: str) -> None:
        with self.ctx.sessions() as session:
            row = session.execute(
                select(Workspace, Project.bucket).join(Project).where(Workspace.id == workspace_id)
            ).first()
            if row is None or row[0].state != "pending" or row[0].locked:
                return
            workspace, bucket = row
            spec = self.spec(workspace, bucket)
        if spec is None:
            self._set(
                workspace_id,
                state="failed",
                state_reason="Its template or credentials are gone; delete it.",
            )
            return

        def progress(message: str) -> None:
            self._set(workspace_id, only_if=("pending",), state_reason=message)

        try:
            self.ctx.providers.workspaces.start(spec, progress)
        except (WorkspaceStartError, BalsamError, OSError) as exc:
            log.warning("workspace %s failed to start: %s", workspace_id, exc)
            self.ctx.providers.workspaces.stop(workspace_id)
            self._set(workspace_id, state="failed", state_reason=str(exc)[:2000])
            self._audit(workspace, "workspace.run", "failure", error=str(exc)[:500])
            return
        lock = self.ctx.providers.workspaces.environment_lock(spec.environment)
        installed = self.ctx.providers.workspaces.user_packages(workspace_id, spec.environment.name)
        now = _now()
        if not self._set(
            workspace_id,
            only_if=("pending",),
            state="running",
            state_reason=None,
            started_at=now,
            last_activity_at=now,
            environment_lock=lock,
            user_packages=installed,  # None: it could not be read whole
        ):
            self.ctx.providers.workspaces.stop(workspace_id)  # stopped or locked meanwhile
            return
        self._audit(workspace, "workspace.run", environment=spec.environment.name)

    def _stop(self, workspace_id: str, reason: str) -> None:
        provider = self.ctx.providers.workspaces
        with self.ctx.sessions() as session:
            environment = session.scalar(
                select(Workspace.environment).where(Workspace.id == workspace_id)
            )
        provider.stop(workspace_id)
        # Read once the workspace's processes are gone: none of them can tamper with it.
        installed = provider.user_packages(workspace_id, environment) if environment else None
        self._set(workspace_id, state="stopped", state_reason=reason, user_packages=installed)

    # -- watching -----------------------------------------------------------------------

    def reattach(self) -> None:
        """After a restart: servers still alive stay running; the others are marked
        stopped; starts that were interrupted are started again. Servers of no
        pending or running workspace (no row, or one stopped or failed) are stopped."""
        provider = self.ctx.providers.workspaces
        with self.ctx.sessions() as session:
            rows = session.execute(
                select(Workspace.id, Workspace.state).where(
                    Workspace.state.in_(("pending", "running"))
                )
            ).all()
        for workspace_id, state in rows:
            if provider.probe(workspace_id).alive:
                self._set(workspace_id, state="running", state_reason=None)
            elif state == "pending":
                self.submit_start(workspace_id)
            else:
                self._set(
                    workspace_id,
                    state="stopped",
                    state_reason="Its server was not running when Balsam started",
                )
        self._stop_unknown({workspace_id for workspace_id, _state in rows})

    def _stop_unknown(self, known: set[str]) -> None:
        """Stop servers no workspace in ``known`` accounts for; a failure is logged,
        never raised: it must not keep Balsam from starting."""
        try:
            stopped = self.ctx.providers.workspaces.stop_unknown(known)
        except (BalsamError, OSError):
            log.exception("stopping workspace servers Balsam does not know failed")
            return
        for workspace_id in stopped:
            log.warning(
                "stopped the server of workspace %s: no pending or running "
                "workspace accounts for it",
                workspace_id,
            )

    def check(self) -> None:
        """One round of liveness, activity and idle checks over running workspaces."""
        provider = self.ctx.providers.workspaces
        with self.ctx.sessions() as session:
            rows = list(
                session.scalars(select(Workspace).where(Workspace.state == "running")).all()
            )
        for ws in rows:
            lock = self._lock(ws.id)
            if not lock.acquire(blocking=False):
                continue  # an operation is under way
            try:
                self._check_one(ws, provider.probe(ws.id))
            except Exception:  # one workspace's server (its user's code) must not stop the round
                log.exception("checking workspace %s failed", ws.id)
            finally:
                lock.release()

    def _check_one(self, ws: Workspace, probe: Probe) -> None:
        provider = self.ctx.providers.workspaces
        if not probe.alive:
            reason = probe.reason or "The server stopped."
            self._set(ws.id, only_if=("running",), state="failed", state_reason=reason)
            self._audit(ws, "workspace.exit", "failure", reason=reason)
            return
        if ws.locked:
            self._stop(ws.id, ws.state_reason or "Locked")
            return
        activity = provider.activity(ws.id)
        last = max((t for t in (activity, ws.last_activity_at, ws.started_at) if t), default=_now())
        if activity and (ws.last_activity_at is None or activity > ws.last_activity_at):
            self._set(ws.id, last_activity_at=activity)
        template = self.ctx.templates.get(ws.template_id)
        if template and _now() - last > timedelta(minutes=template.idle_timeout_minutes):
            self._stop(
                ws.id,
                f"Stopped after {template.idle_timeout_minutes} minutes "
                "without kernel or terminal activity",
            )
            self._audit(ws, "workspace.cull", idle_since=last.isoformat())

    def _loop(self) -> None:
        interval = self.ctx.settings.workspaces.poll_seconds
        while not self._stopping.wait(interval):
            try:
                self.check()
            except Exception:  # keep watching whatever one round hit
                log.exception("workspace check failed")
