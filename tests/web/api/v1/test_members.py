"""Project members: add, re-role, remove; the last owner stays; keys are revoked."""

from __future__ import annotations

from typing import Any

from balsam.context import AppContext
from tests.fixtures.app import TestUser


def _members(user: TestUser, pid: str) -> dict[str, str]:
    r = user.client.get(f"/api/v1/projects/{pid}/members")
    assert r.status_code == 200, r.text
    return {m["username"]: m["role"] for m in r.json()["members"]}


def test_add_list_change_remove(alice: TestUser, bob: TestUser, project: dict[str, Any]) -> None:
    pid = project["id"]
    assert bob.client.get(f"/api/v1/projects/{pid}").status_code == 404
    r = alice.client.post(f"/api/v1/projects/{pid}/members", json={"username": bob.username})
    assert r.status_code == 201 and r.json()["role"] == "member"
    assert _members(bob, pid) == {alice.username: "owner", bob.username: "member"}
    assert bob.client.get(f"/api/v1/projects/{pid}").json()["role"] == "member"
    r = alice.client.patch(f"/api/v1/projects/{pid}/members/{bob.username}", json={"role": "owner"})
    assert r.status_code == 200 and r.json()["role"] == "owner"
    assert alice.client.delete(f"/api/v1/projects/{pid}/members/{bob.username}").status_code == 204
    assert bob.client.get(f"/api/v1/projects/{pid}").status_code == 404


def test_add_twice_or_unknown_user(alice: TestUser, bob: TestUser, project: dict[str, Any]) -> None:
    url = f"/api/v1/projects/{project['id']}/members"
    assert alice.client.post(url, json={"username": bob.username}).status_code == 201
    assert alice.client.post(url, json={"username": bob.username}).status_code == 409
    assert alice.client.post(url, json={"username": "nobody-here"}).status_code == 422
    assert (
        alice.client.post(url, json={"username": bob.username, "role": "boss"}).status_code == 422
    )


def test_last_owner_cannot_leave_or_be_demoted(
    alice: TestUser, bob: TestUser, project: dict[str, Any]
) -> None:
    url = f"/api/v1/projects/{project['id']}/members"
    assert alice.client.delete(f"{url}/{alice.username}").status_code == 409
    assert alice.client.patch(f"{url}/{alice.username}", json={"role": "member"}).status_code == 409
    alice.client.post(url, json={"username": bob.username, "role": "owner"})
    assert alice.client.patch(f"{url}/{alice.username}", json={"role": "member"}).status_code == 200
    assert bob.client.delete(f"{url}/{bob.username}").status_code == 409
    assert alice.client.delete(f"{url}/{alice.username}").status_code == 204


def test_member_cannot_manage_others(
    alice: TestUser, bob: TestUser, make_user: Any, project: dict[str, Any]
) -> None:
    carol = make_user("carol")
    url = f"/api/v1/projects/{project['id']}/members"
    alice.client.post(url, json={"username": bob.username})
    alice.client.post(url, json={"username": carol.username})
    assert bob.client.post(url, json={"username": "x"}).status_code == 403
    assert bob.client.delete(f"{url}/{carol.username}").status_code == 403
    assert bob.client.patch(f"{url}/{bob.username}", json={"role": "owner"}).status_code == 403


def test_removing_a_member_revokes_their_keys(
    alice: TestUser, bob: TestUser, ctx: AppContext, project: dict[str, Any]
) -> None:
    pid = project["id"]
    alice.client.post(f"/api/v1/projects/{pid}/members", json={"username": bob.username})
    key = bob.client.post(f"/api/v1/projects/{pid}/credentials", json={"name": "b"}).json()
    assert ctx.providers.storage.key_exists(key["accessKey"])
    alice.client.delete(f"/api/v1/projects/{pid}/members/{bob.username}")
    assert not ctx.providers.storage.key_exists(key["accessKey"])
    assert ctx.providers.storage.key_exists(project["credentials"]["accessKey"])
