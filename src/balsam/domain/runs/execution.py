"""Running a queued run, and writing its record.

One run goes: claim (``queued`` → ``running`` with this process's name, in one
conditional update) → a storage key that reads the project's bucket and writes only
under ``runs/<run>/`` (its id recorded on the row at once, so a crash leaves nothing
unrevoked: :mod:`.recovery`) → the workspace provider runs the runner in a scratch
checkout of the commit, isolated as a workspace (:meth:`execute_run`), while its events
move the nodes' states → the key is revoked → every object the run wrote is hashed by
Balsam itself (never trusting the runner's word) → after success only, each declared
output is published to its stable path ``<branch>/<path>`` as a new object version with
``balsam-run-id`` metadata and provenance → the record is written (canonical JSON, its
SHA-256 on the row and in the audit chain) → ``succeeded`` | ``failed`` | ``cancelled``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sqlalchemy import select, update

from balsam.context import AppContext
from balsam.db.models import DataObject, Project, Run, RunArtifact, RunNode, utcnow
from balsam.domain.audit.service import AuditRecord
from balsam.domain.data.service import (
    DataService,
    provenance_metadata,
    quota_exceeded,
)
from balsam.domain.queue_worker import claim_oldest
from balsam.domain.runs import plan as plans
from balsam.domain.runs.service import canonical
from balsam.errors import BalsamError, QuotaExceeded
from balsam.providers.storage.base import ScopedKey
from balsam.providers.workspaces.base import RunSpec

log = logging.getLogger(__name__)

#: The record's schema; bumped when its shape changes.
RECORD_SCHEMA = "https://balsam.example/schemas/run-record/1"
NODE_STATES = ("running", "succeeded", "failed", "cancelled")
#: Where a run's pinned inputs are copied, under its prefix.
INPUTS = "inputs/"
#: The error of a run its process did not live to finish.
INTERRUPTED = "Balsam stopped while this run ran; start it again."


def prefix_of(run_id: str) -> str:
    return f"runs/{run_id}/"


def claim_next(ctx: AppContext) -> str | None:
    """Take the oldest queued run whose creator has none running; its id, or None."""
    return claim_oldest(ctx, Run)


class _Cancel:
    """Whether the run should stop: Balsam is stopping, or someone cancelled it (the
    row is read at most once a second)."""

    def __init__(self, ctx: AppContext, run_id: str, stopping: Callable[[], bool]) -> None:
        self.ctx, self.run_id, self.stopping = ctx, run_id, stopping
        self._seen, self._at = False, 0.0
        self.deadline = time.monotonic() + ctx.settings.runs.max_seconds
        self.timed_out = False

    def __call__(self) -> bool:
        if self.stopping():
            return True
        if time.monotonic() > self.deadline:
            self.timed_out = True
            return True
        if not self._seen and time.monotonic() - self._at >= 1.0:
            self._at = time.monotonic()
            with self.ctx.sessions() as session:
                self._seen = bool(session.scalar(select(Run.cancel_requested).where(
                    Run.id == self.run_id)))  # fmt: skip
        return self._seen


def run_run(ctx: AppContext, run_id: str, stopping: Callable[[], bool] = lambda: False) -> None:
    """Run a claimed run to its end; never raises for what the code, the storage or the
    rules refuse (the run fails with the reason)."""
    with ctx.sessions() as session:
        run = session.get(Run, run_id)
        project = session.get(Project, run.project_id) if run is not None else None
        if run is None or project is None:
            return
        bucket = project.bucket
    cancel = _Cancel(ctx, run_id, stopping)
    error: str | None = None
    key = None
    plan: plans.Plan | None = None
    try:
        plan = _plan(ctx, run)
        copies = _pin_inputs(ctx, run, bucket)
        if cancel():
            raise _Cancelled
        key = ctx.providers.storage.create_key(
            bucket, label=f"run-{run_id}@{run.project_id}", write_prefix=prefix_of(run_id)
        )
        _set(ctx, run_id, access_key=key.access_key)
        spec = _spec(ctx, run, bucket, plan, copies, key)
        status = ctx.providers.workspaces.execute_run(spec, _NodeEvents(ctx, run, plan), cancel)
        if cancel.timed_out:
            error = f"The run took longer than {ctx.settings.runs.max_seconds} s and was stopped."
        elif status != 0 and not cancel():
            error = "The run failed: see its nodes."
    except _Cancelled:
        pass
    except BalsamError as exc:
        error = exc.message
    except Exception as exc:  # the run fails with the reason; Balsam goes on
        log.exception("run %s failed", run_id)
        error = f"The run could not be carried out: {exc}"[:2000]
    finally:
        if key is not None:
            revoke(ctx, key.access_key)
    finish(ctx, run_id, bucket, plan, error, cancelled=cancel() and not cancel.timed_out)


class _Cancelled(Exception):
    pass


def _pin_inputs(ctx: AppContext, run: Run, bucket: str) -> dict[str, str]:
    """The run's inputs, pinned: those an exact re-run was given, else the objects its
    parameters name (a text value that is a key in the bucket) as they are now. Each
    version is recorded (key, version id, SHA-256) and copied to
    ``runs/<run>/inputs/<key>``; the run's parameters name the copies (returned: key →
    copy), so the run reads exactly the versions its record names."""
    objects = ctx.providers.storage.objects
    with ctx.sessions() as session:
        rows = session.scalars(
            select(RunArtifact).where(RunArtifact.run_id == run.id, RunArtifact.role == "input")
        ).all()
        pinned = [(r.path, r.version_id, r.size) for r in rows]
    if not pinned:
        pinned = _discover_inputs(ctx, run, bucket)
    copies = {}
    for path, version_id, size in pinned:
        copy = f"{prefix_of(run.id)}{INPUTS}{path}"
        objects.copy(bucket, copy, path, version_id or None, {"balsam-run-id": run.id}, size=size)
        copies[path] = copy
    return copies


def _discover_inputs(ctx: AppContext, run: Run, bucket: str) -> list[tuple[str, str, int]]:
    objects = ctx.providers.storage.objects
    found: list[dict[str, Any]] = []
    for value in sorted({v for v in run.parameters.values() if isinstance(v, str)}):
        if not value or len(value) > 1024 or value.endswith("/") or value.startswith("runs/"):
            continue
        info = objects.head(bucket, value)
        if info is None:
            continue
        found.append({"node_id": "", "role": "input", "path": value,
                      "version_id": info.version_id or "", "size": info.size,
                      "sha256": _sha256_of(ctx, run.project_id, bucket, info)})  # fmt: skip
    with ctx.sessions() as session, session.begin():
        for artifact in found:
            session.add(RunArtifact(project_id=run.project_id, run_id=run.id, **artifact))
    return [(a["path"], a["version_id"], a["size"]) for a in found]


def _sha256_of(ctx: AppContext, project_id: str, bucket: str, info: Any) -> str:
    """The version's SHA-256: Balsam's provenance record of it, else read and hashed."""
    with ctx.sessions() as session:
        known = session.scalar(
            select(DataObject.sha256).where(
                DataObject.project_id == project_id,
                DataObject.path == info.key,
                DataObject.version_id == (info.version_id or ""),
            )
        )
    if known:
        return str(known)
    opened = ctx.providers.storage.objects.open(bucket, info.key, info.version_id)
    return _hashed(opened[1] if opened else iter(()))[0]


def _plan(ctx: AppContext, run: Run) -> plans.Plan:
    """The run's plan, read again from its commit (it was checked when queued)."""
    return plans.parse(run.path, ctx.providers.git.read_file_at(run.project_id, run.commit,
                                                                run.path))  # fmt: skip


def _spec(
    ctx: AppContext,
    run: Run,
    bucket: str,
    plan: plans.Plan,
    copies: Mapping[str, str],
    key: ScopedKey,
) -> RunSpec:
    template = ctx.templates.get(run.template_id)
    if template is None:
        raise BalsamError(f"The template {run.template_id!r} is no longer offered.")
    storage = ctx.providers.storage
    concurrency = ctx.settings.runs.node_concurrency or _cores()
    document = {
        "runId": run.id,
        "bucket": bucket,
        "prefix": prefix_of(run.id),
        "endpoint": storage.endpoint_url,
        "region": storage.region,
        "concurrency": concurrency,
        # Parameters naming an input name its pinned copy.
        "parameters": {
            k: copies.get(v, v) if isinstance(v, str) else v for k, v in run.parameters.items()
        },
        "nodes": [
            {
                "id": n.id,
                "key": n.key,
                "label": n.label,
                "kind": n.kind,
                "filename": n.filename,
                "parents": list(n.parents),
                "env": dict(n.env),
                "outputs": list(n.outputs),
            }
            for n in plan.order()
        ],
    }
    return RunSpec(
        run_id=run.id,
        project_id=run.project_id,
        environment=template.environment,
        limits=template.limits,
        archive=ctx.providers.git.archive(run.project_id, run.commit),
        plan=document,
        env={
            "BALSAM_RUN_ID": run.id,
            "BALSAM_PROJECT": run.project_id,
            "BALSAM_BRANCH": run.branch,
            "BALSAM_BUCKET": bucket,
            "AWS_ENDPOINT_URL": storage.endpoint_url,
            "AWS_S3_ENDPOINT": storage.endpoint_url,
            "JUPYTERLAB_S3_ENDPOINT": storage.endpoint_url,
            "AWS_DEFAULT_REGION": storage.region,
        },
        s3_access_key=key.access_key,
        s3_secret_key=key.secret_key,
    )


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) or 1


class _NodeEvents:
    """Moves node rows as the runner tells; what it tells is checked (node ids of the
    plan, known states, bounded text): it runs the user's code's uid."""

    def __init__(self, ctx: AppContext, run: Run, plan: plans.Plan) -> None:
        self.ctx, self.run_id = ctx, run.id
        self.ids = {n.id for n in plan.nodes}
        self.lock = threading.Lock()

    def __call__(self, event: Mapping[str, object]) -> None:
        node_id, state = event.get("id"), event.get("state")
        if event.get("event") != "node" or node_id not in self.ids or state not in NODE_STATES:
            return
        # Forward only: queued → running → an end; an ended node stays as it ended.
        allowed = ("queued",) if state == "running" else ("queued", "running")
        values: dict[str, Any] = {"state": state}
        now = utcnow()
        if state == "running":
            values["started_at"] = now
        else:
            values["ended_at"] = now
            error, cell = event.get("error"), event.get("cell")
            if isinstance(error, str):
                where = f" (cell {cell + 1})" if isinstance(cell, int) and cell >= 0 else ""
                values["error"] = f"{error}{where}"[:2000]
        with self.lock, self.ctx.sessions() as session, session.begin():
            session.execute(
                update(RunNode)
                .where(
                    RunNode.run_id == self.run_id,
                    RunNode.id == node_id,
                    RunNode.state.in_(allowed),
                )
                .values(**values)
            )


def _set(ctx: AppContext, run_id: str, **values: Any) -> None:
    with ctx.sessions() as session, session.begin():
        session.execute(update(Run).where(Run.id == run_id).values(**values))


def revoke(ctx: AppContext, access_key: str) -> bool:
    """Revoke a run's key and forget its id; False (logged) when storage refused, and
    the row keeps the id for the repair."""
    try:
        ctx.providers.storage.revoke_key(access_key)
    except BalsamError:
        log.warning("a run's key could not be revoked now; the repair will", exc_info=True)
        return False
    with ctx.sessions() as session, session.begin():
        session.execute(update(Run).where(Run.access_key == access_key).values(access_key=None))
    return True


# -- the end: results, publishing, the record ---------------------------------------------


def finish(
    ctx: AppContext,
    run_id: str,
    bucket: str,
    plan: plans.Plan | None,
    error: str | None,
    *,
    cancelled: bool,
    publish: bool = True,
) -> None:
    """End the run: nodes the runner never reached are settled, results hashed,
    declared outputs published (after success, with ``publish``), the record written."""
    with ctx.sessions() as session, session.begin():
        run = session.get(Run, run_id)
        if run is None:
            return
        for node in run.nodes:  # what the runner never reached
            if node.state in ("queued", "running"):
                node.state = "cancelled" if cancelled or node.state == "queued" else "failed"
                node.error = node.error or (
                    "The run was cancelled." if cancelled else "The runner stopped before its end."
                )
                node.ended_at = utcnow()
        ok = error is None and not cancelled and all(n.state == "succeeded" for n in run.nodes)
        state = "cancelled" if cancelled else ("succeeded" if ok else "failed")
        if state == "failed" and error is None:
            error = "The run failed: see its nodes."
    try:
        outputs = _outputs(ctx, run_id, bucket, plan)
        published = (
            _publish(ctx, run_id, bucket, plan, outputs) if state == "succeeded" and publish else []
        )
    except QuotaExceeded as exc:
        state, published = "failed", []
        error = f"Its outputs were not published: {exc.message % exc.params}"
    except BalsamError as exc:
        state, error = "failed", f"The run's results could not be kept: {exc.message}"
        outputs, published = [], []
    record = _record(ctx, run_id, state, error, plan, outputs, published)
    text = canonical(record)
    digest = hashlib.sha256(text.encode()).hexdigest()
    # Imported here: the client's models take ~0.3 s to import, not worth every start.
    from balsam.domain.runs import openlineage

    lineage_events = openlineage.events(record, bucket)
    with ctx.sessions() as session, session.begin():
        run = session.get(Run, run_id)
        if run is None:
            return
        run.state, run.error, run.ended_at = state, error, utcnow()
        run.record, run.record_sha256, run.process = text, digest, None
        run.openlineage = "\n".join(lineage_events) + "\n"
        for artifact in outputs + published:
            session.add(RunArtifact(project_id=run.project_id, run_id=run_id, **artifact))
        for artifact in published:
            session.add(
                DataObject(
                    project_id=run.project_id,
                    path=artifact["path"],
                    version_id=artifact["version_id"],
                    size=artifact["size"],
                    sha256=artifact["sha256"],
                    uploaded_by=run.created_by,
                    source=f"run {run_id}",
                )
            )
        project_id, actor, request_id = run.project_id, run.created_by, run.request_id
    if ctx.settings.runs.openlineage_url:
        openlineage.send(ctx.settings.runs.openlineage_url, lineage_events)
    ctx.audit.record(
        AuditRecord(
            actor=actor,
            action="run.end",
            target=f"project:{project_id}/run:{run_id}",
            outcome="success" if state == "succeeded" else "failure",
            project_id=project_id,
            request_id=request_id,
            details={"runId": run_id, "state": state, "recordSha256": digest},
        )
    )


def _outputs(
    ctx: AppContext, run_id: str, bucket: str, plan: plans.Plan | None
) -> list[dict[str, Any]]:
    """Every object under the run's prefix, hashed by Balsam."""
    objects = ctx.providers.storage.objects
    node_of = {n.key: n.id for n in plan.nodes} if plan else {}
    found: list[dict[str, Any]] = []
    for info in objects.walk(bucket, prefix_of(run_id)):
        if info.key.startswith(f"{prefix_of(run_id)}{INPUTS}"):
            continue  # the pinned inputs: recorded as inputs
        opened = objects.open(bucket, info.key)
        if opened is None:
            continue
        head, chunks = opened
        sha256, size = _hashed(chunks)
        node_key = info.key[len(prefix_of(run_id)) :].split("/", 1)[0]
        found.append(
            {
                "node_id": node_of.get(node_key, ""),
                "role": "output",
                "path": info.key,
                "version_id": head.version_id or "",
                "sha256": sha256,
                "size": size,
            }
        )
    return found


def _hashed(chunks: Iterator[bytes]) -> tuple[str, int]:
    """The SHA-256 and size of a streamed object."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _publish(
    ctx: AppContext,
    run_id: str,
    bucket: str,
    plan: plans.Plan | None,
    outputs: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each declared output, copied from the run's folder to ``<branch>/<path>``."""
    if plan is None:
        return []
    with ctx.sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        branch, user = run.branch, run.created_by
    by_path = {o["path"]: o for o in outputs}
    wanted = [
        (output, by_path[f"{prefix_of(run_id)}{node.key}/outputs/{output}"])
        for node in plan.nodes
        for output in node.outputs
        if f"{prefix_of(run_id)}{node.key}/outputs/{output}" in by_path
    ]
    _check_room(ctx, run_id, bucket, sum(source["size"] for _, source in wanted))
    objects = ctx.providers.storage.objects
    published: list[dict[str, Any]] = []
    for node in plan.nodes:
        for output in node.outputs:
            source = by_path.get(f"{prefix_of(run_id)}{node.key}/outputs/{output}")
            if source is None:
                continue
            metadata = {**provenance_metadata(user, f"run {run_id}"), "balsam-run-id": run_id}
            info = objects.copy(
                bucket, f"{branch}/{output}", source["path"], source["version_id"] or None,
                metadata, size=source["size"],
            )  # fmt: skip
            published.append({**source, "role": "published", "path": info.key,
                              "version_id": info.version_id or ""})  # fmt: skip
    return published


def _check_room(ctx: AppContext, run_id: str, bucket: str, size: int) -> None:
    """QuotaExceeded when publishing ``size`` bytes would take the project past its
    storage quota (then nothing is published)."""
    data = DataService(ctx)
    with ctx.sessions() as session:
        run = session.get(Run, run_id)
        project = session.get(Project, run.project_id) if run else None
        if project is None:
            return
        target = data.data_project(project)
    room = data.room(target)
    if room is not None and size > room:
        raise quota_exceeded(target)


def _record(
    ctx: AppContext,
    run_id: str,
    state: str,
    error: str | None,
    plan: plans.Plan | None,
    outputs: list[dict[str, Any]],
    published: list[dict[str, Any]],
) -> dict[str, Any]:
    """The run's record: who, what code, which environment, which parameters, what each
    node did with which objects; never a secret (the key's id and scope only)."""
    with ctx.sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        template = ctx.templates.get(run.template_id)
        lock = ctx.providers.workspaces.environment_lock(template.environment) if template else None
        git = ctx.providers.git
        files = {run.path} | {n.filename for n in (plan.nodes if plan else ())}
        code: dict[str, str | None] = {}
        for path in sorted(files):
            try:
                code[path] = hashlib.sha256(git.read_file_at(run.project_id, run.commit,
                                                             path)).hexdigest()  # fmt: skip
            except BalsamError:
                code[path] = None
        nodes = []
        for node in run.nodes:
            planned = next((n for n in (plan.nodes if plan else ()) if n.id == node.id), None)
            nodes.append(
                {
                    "id": node.id,
                    "label": node.label,
                    "kind": node.kind,
                    "file": node.filename,
                    "codeSha256": code.get(node.filename),
                    "parents": list(planned.parents) if planned else [],
                    "declaredOutputs": list(planned.outputs) if planned else [],
                    "state": node.state,
                    "error": node.error,
                    "startedAt": _iso(node.started_at),
                    "endedAt": _iso(node.ended_at),
                    "outputs": [_artifact(a) for a in outputs if a["node_id"] == node.id],
                    "published": [_artifact(a) for a in published if a["node_id"] == node.id],
                }
            )
        return {
            "schema": RECORD_SCHEMA,
            "run": {
                "id": run.id,
                "project": run.project_id,
                "branch": run.branch,
                "path": run.path,
                "kind": run.kind,
                "state": state,
                "error": error,
                "rerunOf": run.rerun_of,
                "createdAt": _iso(run.created_at),
                "startedAt": _iso(run.started_at),
                "endedAt": _iso(utcnow()),
            },
            "startedBy": {"user": run.created_by, "requestId": run.request_id},
            "code": {"commit": run.commit, "dirty": run.dirty, "files": code},
            "environment": {
                "template": run.template_id,
                "name": run.environment,
                "packages": lock,
                "lockSha256": hashlib.sha256(canonical(lock).encode()).hexdigest()
                if lock
                else None,
            },
            "inputs": [_artifact(a) for a in _inputs(session, run.id)],
            "parameters": run.parameters,
            "parametersSha256": _sha256(canonical(run.parameters)),
            "credentials": {
                "scope": "read the project's bucket; write only under the run's prefix",
                "bucketPrefix": prefix_of(run.id),
            },
            "nodes": nodes,
        }


def _inputs(session: Any, run_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(RunArtifact).where(RunArtifact.run_id == run_id, RunArtifact.role == "input")
    ).all()
    return [{"path": r.path, "sha256": r.sha256, "size": r.size, "version_id": r.version_id,
             "pinnedAs": f"{prefix_of(run_id)}{INPUTS}{r.path}"} for r in rows]  # fmt: skip


def _artifact(artifact: Mapping[str, Any]) -> dict[str, Any]:
    shown = {k: artifact[k] for k in ("path", "sha256", "size", "pinnedAs") if k in artifact}
    return shown | {"versionId": artifact["version_id"]}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
