"""Deleting is deliberate: a deleted branch's data vanishes from listings at once,
is kept as object versions for ``storage.retention_days``, and is destroyed by the
sweep (``purge_expired``) once that has passed. Real app, SeaweedFS and database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import AuditEvent, PendingOperation
from balsam.domain import recovery
from balsam.domain.data.retention import expired_versions, purge_expired
from balsam.domain.projects.markers import marker_key
from balsam.domain.recovery import RecoveryWorker, recover
from balsam.providers.storage.base import ObjectVersion
from tests.fixtures.app import TestUser

DEAD = "no-such-host-here:999999999:0"  # a journal row of a process that cannot exist


def make_branch(alice: TestUser, ctx: AppContext, pid: str, name: str) -> None:
    """A branch with two objects, one of them overwritten once."""
    response = alice.client.post(f"/api/v1/projects/{pid}/branches", json={"name": name})
    assert response.status_code == 201, response.text
    for key, body in ((f"{name}/a.csv", b"1"), (f"{name}/a.csv", b"2"), (f"{name}/b.csv", b"3")):
        ctx.providers.storage.put_object(pid, key, body)


def purges_of(ctx: AppContext, pid: str) -> list[dict[str, Any]]:
    with ctx.sessions() as session:
        events = session.scalars(
            select(AuditEvent).where(
                AuditEvent.project_id == pid, AuditEvent.action == "data.purge"
            )
        )
        return [dict(e.details) for e in events]


def test_a_deleted_branch_is_kept_for_the_retention_period_then_purged(
    alice: TestUser, ctx: AppContext, project: dict[str, Any]
) -> None:
    pid, storage = project["id"], ctx.providers.storage
    make_branch(alice, ctx, pid, "scratch")
    main_before = storage.list_keys(pid, "main/")

    assert alice.client.delete(f"/api/v1/projects/{pid}/branches/scratch").status_code == 204
    assert storage.list_keys(pid, "scratch/") == []
    kept = [v for v in storage.list_versions(pid, "scratch/") if not v.is_delete_marker]
    assert sorted(v.key for v in kept) == sorted(
        [marker_key("scratch"), "scratch/a.csv", "scratch/a.csv", "scratch/b.csv"]
    )

    assert purge_expired(ctx) == 0  # deleted just now: within the retention period
    assert len(storage.list_versions(pid, "scratch/")) == 7  # 4 versions, 3 markers
    later = datetime.now(UTC) + timedelta(days=ctx.settings.storage.retention_days, minutes=1)
    assert purge_expired(ctx, now=later) >= 7
    assert storage.list_versions(pid, "scratch/") == []
    assert storage.list_keys(pid, "main/") == main_before  # current data is never purged
    assert purges_of(ctx, pid) == [{"count": 7, "retentionDays": 30}]
    assert purge_expired(ctx, now=later) == 0


def test_the_branch_delete_audit_names_what_was_kept(
    alice: TestUser, ctx: AppContext, project: dict[str, Any]
) -> None:
    pid = project["id"]
    make_branch(alice, ctx, pid, "gone")
    assert alice.client.delete(f"/api/v1/projects/{pid}/branches/gone").status_code == 204
    with ctx.sessions() as session:
        event = session.scalars(
            select(AuditEvent).where(
                AuditEvent.project_id == pid, AuditEvent.action == "branch.delete"
            )
        ).one()
        assert event.details == {"retiredObjects": 3, "retentionDays": 30}


def test_a_branch_delete_finished_by_crash_recovery_keeps_the_data(
    alice: TestUser, ctx: AppContext, project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pid, storage = project["id"], ctx.providers.storage
    make_branch(alice, ctx, pid, "cut")
    monkeypatch.setattr("balsam.domain.journal.socket.gethostname", lambda: "no-such-host-here")
    with ctx.sessions() as session, session.begin():
        session.add(
            PendingOperation(
                kind="branch.delete",
                project_id=pid,
                subject="cut",
                actor="alice",
                request_id="r1",
                process=DEAD,
            )
        )
    recover(ctx)
    assert storage.list_keys(pid, "cut/") == []
    assert sum(not v.is_delete_marker for v in storage.list_versions(pid, "cut/")) == 4


def at(day: int) -> datetime:
    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=day)


def entry(day: int, *, latest: bool = False, marker: bool = False) -> ObjectVersion:
    return ObjectVersion("k", f"v{day}", at(day), is_latest=latest, is_delete_marker=marker)


def test_a_version_expires_by_when_it_was_replaced_not_when_it_was_written() -> None:
    marker, replacing, first = entry(25, latest=True, marker=True), entry(20), entry(0)
    history = [marker, replacing, first]  # as list_versions orders them
    assert expired_versions(history, cutoff=at(19)) == []
    assert expired_versions(history, cutoff=at(20)) == [first]
    assert expired_versions(history, cutoff=at(25)) == history
    current = [entry(30, latest=True), entry(0)]
    assert expired_versions(current, cutoff=at(99)) == [current[1]]


def test_the_worker_sweeps_at_most_once_per_purge_interval(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweeps: list[AppContext] = []
    monkeypatch.setattr(recovery, "purge_expired", sweeps.append)
    worker = RecoveryWorker(ctx, purge_interval=3600)
    worker._purge_if_due()
    worker._purge_if_due()
    assert len(sweeps) == 1
    worker.purge_interval = 0
    worker._purge_if_due()
    assert len(sweeps) == 2
