"""Lineage of a project's objects, from the runs' artifacts (:class:`RunArtifact`).

An object version was **produced by** the run and node that wrote it (its copy kept with
the run, or the version published to its stable path). That node's **inputs** are the
objects the run's parameters named (pinned by version when it started) and the outputs of
the nodes it is linked from; each input is followed to its own producer in turn, at most
:data:`MAX_DEPTH` levels. An object version is **used by** the runs that read it.

Members (and admins) only, as the data itself: others are told the project does not exist.
"""

from __future__ import annotations

import json

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from balsam.context import AppContext
from balsam.db.models import Run, RunArtifact
from balsam.domain.data.service import DataService, check_path
from balsam.domain.identity.service import Actor
from balsam.domain.runs.schemas import Lineage, LineageInput, ProducedBy, UsedBy
from balsam.errors import N_, NotFound

#: How far upstream a lineage follows producers.
MAX_DEPTH = 10
#: Most inputs and users listed per level.
MAX_LISTED = 1000


class LineageService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def lineage(
        self, actor: Actor, project_id: str, path: str, version_id: str | None = None
    ) -> Lineage:
        """The lineage of ``path`` (its current version unless ``version_id``)."""
        check_path(path)
        project = DataService(self.ctx).access(actor, project_id, "data.read")
        if version_id is None:
            info = self.ctx.providers.storage.objects.head(project.bucket, path)
            if info is None:
                raise NotFound(N_("No object at '%(path)s'."), params={"path": path})
            version_id = info.version_id or ""
        with self.ctx.sessions() as session:
            produced = _producer(session, project.id, path, version_id, depth=0)
            used = session.execute(
                select(RunArtifact.run_id, RunArtifact.node_id)
                .where(
                    RunArtifact.project_id == project.id,
                    RunArtifact.path == path,
                    RunArtifact.version_id == version_id,
                    RunArtifact.role == "input",
                )
                .limit(MAX_LISTED)
            ).all()
        return Lineage(
            path=path,
            version_id=version_id,
            produced_by=produced,
            inputs=produced.inputs if produced else [],
            used_by=[UsedBy(run_id=r, node=n) for r, n in used],
        )


def _producer(
    session: Session, project_id: str, path: str, version_id: str, depth: int
) -> ProducedBy | None:
    wrote = session.execute(
        select(RunArtifact.run_id, RunArtifact.node_id)
        .where(
            RunArtifact.project_id == project_id,
            RunArtifact.path == path,
            RunArtifact.version_id == version_id,
            RunArtifact.role.in_(("output", "published")),
        )
        .limit(1)
    ).first()
    if wrote is None:
        return None
    run_id, node_id = wrote
    run = session.get(Run, run_id)
    if run is None:
        return None
    inputs = _inputs(session, run, node_id, depth) if depth < MAX_DEPTH else []
    return ProducedBy(run_id=run_id, node=node_id, path=run.path, commit=run.commit,
                      environment=run.environment, inputs=inputs)  # fmt: skip


def _inputs(session: Session, run: Run, node_id: str, depth: int) -> list[LineageInput]:
    """The node's inputs: the run's declared ones, and its parents' outputs."""
    parents = _parents(run, node_id)
    rows = session.scalars(
        select(RunArtifact)
        .where(
            RunArtifact.run_id == run.id,
            or_(
                (RunArtifact.role == "input") & RunArtifact.node_id.in_(("", node_id)),
                (RunArtifact.role == "output")
                & RunArtifact.node_id.in_(parents)
                & RunArtifact.path.contains("/outputs/"),
            ),
        )
        .order_by(RunArtifact.id)
        .limit(MAX_LISTED)
    ).all()
    return [
        LineageInput(
            path=row.path,
            version_id=row.version_id,
            sha256=row.sha256,
            produced_by=_producer(session, run.project_id, row.path, row.version_id, depth + 1),
        )
        for row in rows
    ]


def _parents(run: Run, node_id: str) -> list[str]:
    """The nodes ``node_id`` is linked from, as the run's record names them."""
    try:
        nodes = json.loads(run.record or "{}").get("nodes", [])
    except ValueError:
        return []
    for node in nodes:
        if node.get("id") == node_id:
            return [str(p) for p in node.get("parents", [])]
    return []
