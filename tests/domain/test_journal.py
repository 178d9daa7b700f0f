"""Crash recovery in-process: journal rows of a dead process, left at chosen steps
of branch create/delete and project delete, are completed or undone by ``recover``;
rows of a live process are left alone."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import AuditEvent, Branch, Credential, PendingOperation, Project, Workspace
from balsam.domain.journal import Journal, this_process
from balsam.domain.projects.markers import marker_body, marker_key
from balsam.domain.recovery import recover
from balsam.domain.steps import Compensations
from balsam.errors import ProviderError
from balsam.providers.workspaces.base import WorkspaceSecrets
from tests.fixtures.app import TestUser

DEAD = "no-such-host-here:999999999:0"  # a pid that cannot exist


def journal(
    ctx: AppContext, kind: str, project_id: str, subject: str = "", process: str = DEAD
) -> int:
    with ctx.sessions() as session, session.begin():
        row = PendingOperation(
            kind=kind,
            project_id=project_id,
            subject=subject,
            actor="alice",
            request_id="r1",
            process=process,
        )
        session.add(row)
        session.flush()
        return row.id


def pending(ctx: AppContext, op_id: int) -> bool:
    with ctx.sessions() as session:
        return session.get(PendingOperation, op_id) is not None


def repair_of(ctx: AppContext, project_id: str, kind: str) -> dict[str, Any]:
    with ctx.sessions() as session:
        event = session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.project_id == project_id,
                AuditEvent.action == kind,
                AuditEvent.outcome == "failure",
            )
            .order_by(AuditEvent.id.desc())
        ).first()
        assert event is not None
        return dict(event.details)


def test_rows_of_other_hosts_and_live_processes_are_left_alone(
    ctx: AppContext, project: dict[str, Any]
) -> None:
    mine = journal(ctx, "branch.create", project["id"], "x", process=this_process())
    theirs = journal(ctx, "branch.create", project["id"], "x", process="other-host:1:1")
    try:
        recover(ctx)
        assert pending(ctx, mine) and pending(ctx, theirs)
    finally:
        with ctx.sessions() as session, session.begin():
            for op_id in (mine, theirs):
                session.delete(session.get(PendingOperation, op_id))


def test_a_branch_create_cut_short_is_undone(
    ctx: AppContext, project: dict[str, Any], monkeypatch: Any
) -> None:
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


def test_a_branch_delete_cut_short_is_finished(
    alice: TestUser, ctx: AppContext, project: dict[str, Any], monkeypatch: Any
) -> None:
    pid = project["id"]
    assert (
        alice.client.post(f"/api/v1/projects/{pid}/branches", json={"name": "going"}).status_code
        == 201
    )
    ctx.providers.storage.delete_prefix(pid, "going/")  # the step before the crash
    monkeypatch.setattr("balsam.domain.journal.socket.gethostname", lambda: "no-such-host-here")
    op_id = journal(ctx, "branch.delete", pid, "going")
    recover(ctx)
    assert not pending(ctx, op_id)
    assert "going" not in ctx.providers.git.list_branches(pid)
    with ctx.sessions() as session:
        assert session.get(Branch, (pid, "going")) is None
    assert repair_of(ctx, pid, "branch.delete")["repair"] == "completed"


def test_a_project_delete_cut_short_is_finished(
    ctx: AppContext, project: dict[str, Any], monkeypatch: Any
) -> None:
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


# -- keys and workspaces -------------------------------------------------------------


def test_a_key_mint_cut_short_revokes_the_unrecorded_key_only(
    ctx: AppContext, project: dict[str, Any], monkeypatch: Any
) -> None:
    pid = project["id"]
    recorded = project["credentials"]["accessKey"]
    orphan = ctx.providers.storage.create_key(pid, label="alice@halfway")  # then the crash
    monkeypatch.setattr("balsam.domain.journal.socket.gethostname", lambda: "no-such-host-here")
    op_id = journal(ctx, "credential.create", pid)
    recover(ctx)
    assert not pending(ctx, op_id)
    assert not ctx.providers.storage.key_exists(orphan.access_key)
    assert ctx.providers.storage.key_exists(recorded)
    assert repair_of(ctx, pid, "credential.create")["repair"] == "undone"


def test_a_key_revoke_cut_short_is_finished(
    alice: TestUser, ctx: AppContext, project: dict[str, Any], monkeypatch: Any
) -> None:
    pid = project["id"]
    minted = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "k"})
    assert minted.status_code == 201, minted.text
    access_key = minted.json()["accessKey"]
    ctx.providers.storage.revoke_key(access_key)  # the step before the crash
    monkeypatch.setattr("balsam.domain.journal.socket.gethostname", lambda: "no-such-host-here")
    op_id = journal(ctx, "credential.revoke", pid, access_key)
    recover(ctx)
    assert not pending(ctx, op_id)
    with ctx.sessions() as session:
        assert session.get(Credential, access_key) is None
    listed = alice.client.get(f"/api/v1/projects/{pid}/credentials").json()
    assert access_key not in str(listed)


def _half_made_workspace(ctx: AppContext, pid: str, workspace_id: str) -> str:
    key = ctx.providers.storage.create_key(pid, label=f"alice@{pid}/{workspace_id}")
    ctx.workspace_secrets.save(
        workspace_id,
        WorkspaceSecrets(
            s3_access_key=key.access_key,
            s3_secret_key=key.secret_key,
            git_username="alice",
            git_token="bws_x",
            server_token="s",
        ),
    )
    return key.access_key


def _stopped_workspace(ctx: AppContext, pid: str, alice: TestUser, workspace_id: str) -> str:
    """A workspace's rows (stopped) and key, as a finished create leaves them."""
    access_key = _half_made_workspace(ctx, pid, workspace_id)
    with ctx.sessions() as session, session.begin():
        session.add(
            Credential(
                access_key=access_key,
                project_id=pid,
                user_id=alice.actor.user_id,
                name=f"workspace {workspace_id}",
            )
        )
        session.add(
            Workspace(
                id=workspace_id,
                name=workspace_id,
                project_id=pid,
                branch="main",
                template_id="python",
                environment="python",
                owner_id=alice.actor.user_id,
                state="stopped",
                state_reason="",
                locked=False,
                s3_access_key=access_key,
            )
        )
    return access_key


def test_a_workspace_create_cut_short_is_undone(
    ctx: AppContext, project: dict[str, Any], monkeypatch: Any
) -> None:
    pid = project["id"]
    access_key = _half_made_workspace(ctx, pid, "halfway-ws-1")
    monkeypatch.setattr("balsam.domain.journal.socket.gethostname", lambda: "no-such-host-here")
    op_id = journal(ctx, "workspace.create", pid, "halfway-ws-1")
    recover(ctx)
    assert not pending(ctx, op_id)
    assert not ctx.providers.storage.key_exists(access_key)
    assert ctx.workspace_secrets.load("halfway-ws-1") is None
    assert ctx.providers.storage.key_exists(project["credentials"]["accessKey"])
    assert repair_of(ctx, pid, "workspace.create")["repair"] == "undone"


def test_a_workspace_delete_cut_short_is_finished(
    alice: TestUser, ctx: AppContext, project: dict[str, Any], monkeypatch: Any
) -> None:
    pid = project["id"]
    access_key = _stopped_workspace(ctx, pid, alice, "going-ws-1")
    monkeypatch.setattr("balsam.domain.journal.socket.gethostname", lambda: "no-such-host-here")
    op_id = journal(ctx, "workspace.delete", pid, "going-ws-1")
    recover(ctx)
    assert not pending(ctx, op_id)
    with ctx.sessions() as session:
        assert session.get(Workspace, "going-ws-1") is None
        assert session.get(Credential, access_key) is None
    assert not ctx.providers.storage.key_exists(access_key)
    assert ctx.workspace_secrets.load("going-ws-1") is None
    assert repair_of(ctx, pid, "workspace.delete")["repair"] == "completed"


def test_an_undo_that_fails_is_kept_and_repaired_and_blocks_the_project_meanwhile(
    alice: TestUser, ctx: AppContext, project: dict[str, Any]
) -> None:
    """Storage down while a mint is undone: the key stays, journaled; the project
    takes no new operation (503, Retry-After) until a repair has revoked it."""
    pid = project["id"]
    storage = ctx.providers.storage

    def down() -> None:
        raise ProviderError("storage is down")

    undo = Compensations()
    with (
        pytest.raises(RuntimeError),
        Journal(ctx).running("credential.create", pid, alice.actor, undo=undo),
    ):
        orphan = storage.create_key(pid, label="alice@undo-failed")
        undo.push("key", down)
        raise RuntimeError("the step after the key failed")
    assert undo.failed == ["key"]
    assert storage.key_exists(orphan.access_key)
    refused = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "k"})
    assert refused.status_code == 503 and "repair" in refused.json()["detail"]
    assert refused.headers["Retry-After"] == "30"

    recover(ctx)
    assert not storage.key_exists(orphan.access_key)
    assert storage.key_exists(project["credentials"]["accessKey"])
    assert repair_of(ctx, pid, "credential.create")["repair"] == "undone"
    again = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "k"})
    assert again.status_code == 201, again.text


def test_a_mint_that_may_have_left_a_key_is_kept_for_repair(
    alice: TestUser, ctx: AppContext, project: dict[str, Any], monkeypatch: Any
) -> None:
    """The storage timed out but may still make the key (weed paused, say): the
    mint fails, the journal keeps it, and the repair revokes what it left."""
    pid = project["id"]
    storage = ctx.providers.storage
    real_create = storage.create_key
    left: list[str] = []

    def carried_out_late(bucket: str, *, label: str) -> Any:
        left.append(real_create(bucket, label=label).access_key)
        error = ProviderError("timed out", details={"code": "DEADLINE_EXCEEDED"})
        error.unsettled = True
        raise error

    monkeypatch.setattr(storage, "create_key", carried_out_late)
    failed = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "k"})
    assert failed.status_code == 503, failed.text  # storage unavailable
    monkeypatch.undo()
    refused = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "k"})
    assert refused.status_code == 503 and "repair" in refused.json()["detail"]
    assert refused.headers["Retry-After"] == "30"

    recover(ctx)
    assert not storage.key_exists(left[0])
    assert storage.key_exists(project["credentials"]["accessKey"])
    again = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "k"})
    assert again.status_code == 201, again.text


def test_a_workspace_delete_that_fails_part_way_is_finished_by_the_repair(
    alice: TestUser, ctx: AppContext, project: dict[str, Any], monkeypatch: Any
) -> None:
    """Storage down after the server and home are gone (a review saw the workspace
    left 'stopped' with its key alive and no journal row): the delete answers 503, stays
    journaled, and the repair revokes the key and removes the rows."""
    pid = project["id"]
    access_key = _stopped_workspace(ctx, pid, alice, "half-gone-1")
    storage = ctx.providers.storage

    def down(_: str) -> None:
        raise ProviderError("storage is down", details={"code": "UNAVAILABLE"})

    monkeypatch.setattr(storage, "revoke_key", down)
    failed = alice.client.delete("/api/v1/workspaces/half-gone-1")
    assert failed.status_code in (502, 503), failed.text
    monkeypatch.undo()
    assert storage.key_exists(access_key)
    with ctx.sessions() as session:
        row = session.scalars(
            select(PendingOperation).where(PendingOperation.subject == "half-gone-1")
        ).one()
        assert row.kind == "workspace.delete"
    refused = alice.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "k"})
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"

    recover(ctx)
    assert not storage.key_exists(access_key)
    with ctx.sessions() as session:
        assert session.get(Workspace, "half-gone-1") is None
        assert session.get(Credential, access_key) is None
    assert repair_of(ctx, pid, "workspace.delete")["repair"] == "completed"


def test_a_branch_marker_written_after_its_timeout_is_retired_by_the_repair(
    alice: TestUser, ctx: AppContext, project: dict[str, Any], monkeypatch: Any
) -> None:
    """A paused storage server carried out the marker's write after the branch
    create had timed out and been undone (a review found it current in a branch that
    does not exist): the journal keeps the create, and the repair retires it."""
    pid, bucket = project["id"], project["bucket"]
    storage = ctx.providers.storage
    real_put = storage.put_object

    def carried_out_late(bucket: str, key: str, data: bytes) -> None:
        real_put(bucket, key, data)
        error = ProviderError("timed out", details={"code": "ReadTimeoutError"})
        error.unsettled = True
        raise error

    monkeypatch.setattr(storage, "put_object", carried_out_late)
    failed = alice.client.post(f"/api/v1/projects/{pid}/branches", json={"name": "sen"})
    assert failed.status_code in (502, 503), failed.text
    monkeypatch.undo()
    storage.put_object(bucket, "sen/.balsam-branch", b"late")  # the server, later
    assert "sen" not in ctx.providers.git.list_branches(pid)
    recover(ctx)
    assert storage.list_keys(bucket, "sen/") == []
    assert repair_of(ctx, pid, "branch.create")["repair"] == "undone"
