"""Crash recovery in-process: journal rows of a dead process, left at chosen steps
of branch create/delete and project delete, are completed or undone by ``recover``;
rows of a live process are left alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import AuditEvent, Branch, PendingOperation, Project
from balsam.domain.journal import recover, this_process
from balsam.domain.projects.service import marker_body, marker_key
from tests.fixtures.app import TestUser

DEAD = "no-such-host-here:999999999:0"  # a pid that cannot exist


def journal(ctx: AppContext, kind: str, project_id: str, subject: str = "",
            process: str = DEAD) -> int:
    with ctx.sessions() as session, session.begin():
        row = PendingOperation(kind=kind, project_id=project_id, subject=subject,
                               actor="alice", request_id="r1", process=process)
        session.add(row)
        session.flush()
        return row.id


def pending(ctx: AppContext, op_id: int) -> bool:
    with ctx.sessions() as session:
        return session.get(PendingOperation, op_id) is not None


def repair_of(ctx: AppContext, project_id: str, kind: str) -> dict[str, Any]:
    with ctx.sessions() as session:
        event = session.scalars(select(AuditEvent).where(
            AuditEvent.project_id == project_id, AuditEvent.action == kind,
            AuditEvent.outcome == "failure").order_by(AuditEvent.id.desc())).first()
        assert event is not None
        return dict(event.details)


def test_rows_of_other_hosts_and_live_processes_are_left_alone(
        ctx: AppContext, project: dict[str, Any]) -> None:
    mine = journal(ctx, "branch.create", project["id"], "x", process=this_process())
    theirs = journal(ctx, "branch.create", project["id"], "x", process="other-host:1:1")
    try:
        recover(ctx)
        assert pending(ctx, mine) and pending(ctx, theirs)
    finally:
        with ctx.sessions() as session, session.begin():
            for op_id in (mine, theirs):
                session.delete(session.get(PendingOperation, op_id))


def test_a_branch_create_cut_short_is_undone(ctx: AppContext, project: dict[str, Any],
                                             monkeypatch: Any) -> None:
    pid, bucket = project["id"], project["id"]
    monkeypatch.setattr("balsam.domain.journal.socket.gethostname", lambda: "no-such-host-here")
    ctx.providers.git.create_branch(pid, "halfway", from_branch="main")
    ctx.providers.storage.put_object(bucket, marker_key("halfway"), marker_body("x", "halfway"))
    op_id = journal(ctx, "branch.create", pid, "halfway")
    recover(ctx)
    assert not pending(ctx, op_id)
    assert "halfway" not in ctx.providers.git.list_branches(pid)
    assert ctx.providers.storage.list_keys(bucket, "halfway/") == []
    assert repair_of(ctx, pid, "branch.create")["repair"] == "undone"


def test_a_branch_delete_cut_short_is_finished(alice: TestUser, ctx: AppContext,
                                               project: dict[str, Any], monkeypatch: Any) -> None:
    pid = project["id"]
    assert alice.client.post(f"/api/v1/projects/{pid}/branches",
                             json={"name": "going"}).status_code == 201
    ctx.providers.storage.delete_prefix(pid, "going/")  # the step before the crash
    monkeypatch.setattr("balsam.domain.journal.socket.gethostname", lambda: "no-such-host-here")
    op_id = journal(ctx, "branch.delete", pid, "going")
    recover(ctx)
    assert not pending(ctx, op_id)
    assert "going" not in ctx.providers.git.list_branches(pid)
    with ctx.sessions() as session:
        assert session.get(Branch, (pid, "going")) is None
    assert repair_of(ctx, pid, "branch.delete")["repair"] == "completed"


def test_a_project_delete_cut_short_is_finished(ctx: AppContext, project: dict[str, Any],
                                                monkeypatch: Any) -> None:
    pid = project["id"]
    key = project["credentials"]["accessKey"]
    ctx.providers.storage.revoke_key(key)  # the step before the crash
    monkeypatch.setattr("balsam.domain.journal.socket.gethostname", lambda: "no-such-host-here")
    op_id = journal(ctx, "project.delete", pid)
    recover(ctx)
    assert not pending(ctx, op_id)
    with ctx.sessions() as session:
        assert session.get(Project, pid) is None
    assert not ctx.providers.git.repository_exists(pid)
    assert not ctx.providers.storage.bucket_exists(pid)
    assert repair_of(ctx, pid, "project.delete")["repair"] == "completed"
