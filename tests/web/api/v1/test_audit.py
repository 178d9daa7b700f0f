"""The audit trail: what is recorded, who may read it, paging, and the hash chain."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from balsam.context import AppContext
from balsam.db.engine import make_engine, make_sessionmaker
from balsam.db.migrate import upgrade
from balsam.db.models import AuditEvent
from balsam.domain.audit.service import GENESIS, AuditLog, AuditRecord, _digest
from tests.fixtures.app import TestUser


def events(client: httpx.Client, url: str = "/api/v1/audit", **params: Any) -> list[dict[str, Any]]:
    r = client.get(url, params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["events"]
    return found


def project_audit(client: httpx.Client, pid: str, **params: Any) -> httpx.Response:
    return client.get(f"/api/v1/projects/{pid}/audit", params=params)


@pytest.fixture
def busy_project(alice: TestUser, bob: TestUser, project: dict[str, Any]) -> dict[str, Any]:
    """A project with a member, a minted and revoked key, a created and deleted branch."""
    url = f"/api/v1/projects/{project['id']}"
    steps = [
        alice.client.post(f"{url}/members", json={"username": bob.username}),
        alice.client.post(f"{url}/branches", json={"name": "scratch"}),
        alice.client.delete(f"{url}/branches/scratch"),
    ]
    key = alice.client.post(f"{url}/credentials", json={"name": "k"})
    steps += [key, alice.client.delete(f"{url}/credentials/{key.json()['accessKey']}")]
    assert [s.status_code for s in steps] == [201, 201, 204, 201, 204]
    return {**project, "revokedKey": key.json()["accessKey"]}


def test_project_actions_are_recorded(
    alice: TestUser, bob: TestUser, busy_project: dict[str, Any]
) -> None:
    pid = busy_project["id"]
    trail = events(alice.client, f"/api/v1/projects/{pid}/audit")
    assert [(e["action"], e["outcome"]) for e in reversed(trail)] == [
        ("project.create", "success"),
        ("member.add", "success"),
        ("branch.create", "success"),
        ("branch.delete", "success"),
        ("credential.create", "success"),
        ("credential.revoke", "success"),
    ]
    assert all(e["actor"] == alice.username and e["projectId"] == pid for e in trail)
    by_action = {e["action"]: e for e in trail}
    assert by_action["member.add"]["target"] == f"project:{pid}/user:{bob.username}"
    assert by_action["member.add"]["details"] == {"role": "member"}
    assert by_action["branch.delete"]["target"] == f"project:{pid}/branch:scratch"
    revoked = busy_project["revokedKey"]
    assert by_action["credential.revoke"]["target"] == f"project:{pid}/credential:{revoked}"
    assert all(
        set(e)
        == {
            "id",
            "at",
            "actor",
            "action",
            "target",
            "projectId",
            "outcome",
            "requestId",
            "details",
            "hash",
            "prevHash",
        }
        for e in trail
    )


def test_request_id_is_recorded(alice: TestUser, project: dict[str, Any]) -> None:
    rid = f"trace-{project['id']}"
    r = alice.client.patch(
        f"/api/v1/projects/{project['id']}",
        json={"description": "x"},
        headers={"X-Request-ID": rid},
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == rid
    newest = events(alice.client, f"/api/v1/projects/{project['id']}/audit", limit=1)[0]
    assert newest["action"] == "project.update" and newest["requestId"] == rid


def test_project_delete_is_recorded(
    alice: TestUser, admin: TestUser, project: dict[str, Any]
) -> None:
    pid = project["id"]
    assert alice.client.delete(f"/api/v1/projects/{pid}").status_code == 204
    mine = [e for e in events(admin.client) if e["projectId"] == pid]
    assert mine[0]["action"] == "project.delete" and mine[0]["actor"] == alice.username
    assert mine[0]["details"] == {"revokedKeys": 1}
    assert mine[-1]["action"] == "project.create"


def test_denied_requests_are_recorded(
    alice: TestUser,
    bob: TestUser,
    admin: TestUser,
    anon: httpx.Client,
    project: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    pid = project["id"]
    assert bob.client.get(f"/api/v1/projects/{pid}").status_code == 404
    rid = unique("anon-")
    assert anon.get(f"/api/v1/projects/{pid}", headers={"X-Request-ID": rid}).status_code == 401
    trail = events(admin.client)
    non_member = next(e for e in trail if e["actor"] == bob.username and e["projectId"] == pid)
    assert non_member["action"] == "project.read" and non_member["outcome"] == "denied"
    assert non_member["details"] == {"reason": "not a member"}
    anonymous = next(e for e in trail if e["requestId"] == rid)
    assert anonymous["actor"] == "anonymous" and anonymous["outcome"] == "denied"
    assert anonymous["action"] == "request.denied"
    assert anonymous["target"] == f"GET /api/v1/projects/{pid}"
    assert anonymous["details"]["status"] == 401
    owner_view = events(alice.client, f"/api/v1/projects/{pid}/audit")
    assert non_member["id"] in {e["id"] for e in owner_view}


def test_denial_on_a_missing_project_stays_off_project_trails(
    bob: TestUser, admin: TestUser, unique: Callable[[str], str]
) -> None:
    ghost = unique("ghost-project-")
    assert bob.client.get(f"/api/v1/projects/{ghost}").status_code == 404
    newest = events(admin.client, limit=5)
    mine = next(e for e in newest if e["actor"] == bob.username)
    assert mine["target"] == f"project:{ghost}" and mine["projectId"] is None
    assert mine["outcome"] == "denied"


def test_newest_first_and_paginated(
    admin: TestUser, alice: TestUser, busy_project: dict[str, Any]
) -> None:
    whole = admin.client.get("/api/v1/audit", params={"limit": 6}).json()
    assert whole["limit"] == 6 and whole["offset"] == 0 and whole["total"] >= 8
    ids = [e["id"] for e in whole["events"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 6
    first = admin.client.get("/api/v1/audit", params={"limit": 3}).json()
    second = admin.client.get("/api/v1/audit", params={"limit": 3, "offset": 3}).json()
    assert [e["id"] for e in first["events"] + second["events"]] == ids
    assert first["total"] == second["total"] == whole["total"]
    past_end = admin.client.get("/api/v1/audit", params={"offset": whole["total"]}).json()
    assert past_end["events"] == []


def test_project_audit_pages(alice: TestUser, busy_project: dict[str, Any]) -> None:
    pid = busy_project["id"]
    page = project_audit(alice.client, pid, limit=2, offset=1).json()
    assert page["total"] == 6 and page["limit"] == 2 and page["offset"] == 1
    everything = events(alice.client, f"/api/v1/projects/{pid}/audit")
    assert [e["id"] for e in page["events"]] == [e["id"] for e in everything[1:3]]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "many"}]
)
def test_bad_paging_is_422(admin: TestUser, params: dict[str, Any]) -> None:
    r = admin.client.get("/api/v1/audit", params=params)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


def test_project_audit_is_for_owners(
    alice: TestUser,
    bob: TestUser,
    admin: TestUser,
    make_user: Callable[..., TestUser],
    anon: httpx.Client,
    busy_project: dict[str, Any],
) -> None:
    pid = busy_project["id"]
    carol = make_user("carol")
    assert project_audit(bob.client, pid).status_code == 403  # a member, not an owner
    assert project_audit(carol.client, pid).status_code == 404  # nothing leaks
    assert project_audit(anon, pid).status_code == 401
    assert project_audit(admin.client, pid).status_code == 200
    alice.client.patch(f"/api/v1/projects/{pid}/members/{bob.username}", json={"role": "owner"})
    assert project_audit(bob.client, pid).status_code == 200


def test_project_audit_holds_only_that_project(
    alice: TestUser, unique: Callable[[str], str], busy_project: dict[str, Any]
) -> None:
    other = alice.client.post(
        "/api/v1/projects", json={"name": unique("Other "), "branchName": "main"}
    ).json()
    for pid in (busy_project["id"], other["id"]):
        trail = events(alice.client, f"/api/v1/projects/{pid}/audit")
        assert trail and all(e["projectId"] == pid for e in trail)


def test_global_audit_is_for_admins(alice: TestUser, anon: httpx.Client) -> None:
    assert alice.client.get("/api/v1/audit").status_code == 403
    assert anon.get("/api/v1/audit").status_code == 401


def test_shared_chain_verifies(ctx: AppContext, busy_project: dict[str, Any]) -> None:
    ok, checked, bad = ctx.audit.verify_chain()
    assert ok and bad is None and checked >= 7


def test_served_hashes_link_up(admin: TestUser, busy_project: dict[str, Any]) -> None:
    newest = events(admin.client, limit=20)
    for later, earlier in pairwise(newest):
        assert later["prevHash"] == earlier["hash"]


# -- tampering, on a database of its own so the shared chain stays intact ----------


@pytest.fixture
def private_sessions(fresh_database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(fresh_database_url)
    engine = make_engine(fresh_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def fill(log: AuditLog, count: int) -> list[int]:
    for i in range(count):
        log.record(
            AuditRecord(
                actor="tester",
                action="test.step",
                target=f"step:{i}",
                project_id="p" if i % 2 else None,
                details={"n": i, "ok": True},
            )
        )
    return [e.id for e in reversed(log.page(limit=count)[0])]


def test_chain_starts_at_genesis(private_sessions: sessionmaker[Session]) -> None:
    log = AuditLog(private_sessions)
    assert log.verify_chain() == (True, 0, None)
    ids = fill(log, 3)
    assert log.verify_chain() == (True, 3, None)
    with private_sessions() as session:
        first = session.get(AuditEvent, ids[0])
        assert first is not None and first.prev_hash == GENESIS


def test_edited_details_break_the_chain(private_sessions: sessionmaker[Session]) -> None:
    log = AuditLog(private_sessions)
    ids = fill(log, 4)
    with private_sessions() as session, session.begin():
        session.execute(
            update(AuditEvent).where(AuditEvent.id == ids[2]).values(details={"n": 2, "ok": False})
        )
    assert log.verify_chain() == (False, 2, ids[2])


@pytest.mark.parametrize("field", ["actor", "outcome", "target"])
def test_edited_fields_break_the_chain(private_sessions: sessionmaker[Session], field: str) -> None:
    log = AuditLog(private_sessions)
    ids = fill(log, 3)
    with private_sessions() as session, session.begin():
        session.execute(
            update(AuditEvent).where(AuditEvent.id == ids[1]).values({field: "tampered"})
        )
    assert log.verify_chain() == (False, 1, ids[1])


def test_deleted_record_breaks_the_chain(private_sessions: sessionmaker[Session]) -> None:
    log = AuditLog(private_sessions)
    ids = fill(log, 3)
    with private_sessions() as session, session.begin():
        session.delete(session.scalars(select(AuditEvent).where(AuditEvent.id == ids[1])).one())
    assert log.verify_chain() == (False, 1, ids[2])


def test_rehashed_edit_still_breaks_the_chain(private_sessions: sessionmaker[Session]) -> None:
    """A forger who also recomputes the edited record's hash orphans the next record."""
    log = AuditLog(private_sessions)
    ids = fill(log, 3)
    with private_sessions() as session, session.begin():
        event = session.get(AuditEvent, ids[0])
        assert event is not None
        event.details = {"n": 0, "ok": False}
        event.hash = _digest(event.prev_hash, event.at, event)
    assert log.verify_chain() == (False, 1, ids[1])
