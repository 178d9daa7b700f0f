"""The push rules live in git itself (a pre-receive hook): real git over HTTP.

Bob is a member, Alice the owner. Every refused push leaves the repository as it
was; every accepted one is audited with ref, old and new commit, and branches
made or deleted by a push appear in, and vanish from, the API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import AuditEvent
from tests.fixtures.app import TestUser
from tests.web.test_git_hosting import git, url_for

IDENT = ("-c", "user.name=T", "-c", "user.email=t@example.org")


@pytest.fixture
def shared(alice: TestUser, bob: TestUser, project: dict[str, Any]) -> str:
    pid: str = project["id"]
    r = alice.client.post(f"/api/v1/projects/{pid}/members", json={"username": bob.username})
    assert r.status_code == 201
    return pid


def clone(live_url: str, pid: str, user: TestUser, where: Path) -> Path:
    git("clone", "-q", url_for(live_url, pid, user.username, user.token), str(where))
    return where


def commit(work: Path, name: str) -> str:
    (work / name).write_text(name)
    git("add", name, cwd=work)
    git(*IDENT, "commit", "-qm", name, cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def heads(ctx: AppContext, pid: str) -> list[str]:
    return ctx.providers.git.list_branches(pid)


@pytest.mark.parametrize(
    "ref", ["feat/x", "-x", "HEAD", "b" * 200, "refs/pull/1/head", "refs/notes/x", "refs/x"]
)
def test_refs_the_branch_api_forbids_are_refused(
    live_url: str, bob: TestUser, shared: str, ctx: AppContext, tmp_path: Path, ref: str
) -> None:
    work = clone(live_url, shared, bob, tmp_path / "w")
    commit(work, "a.txt")
    target = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
    out = git("push", "origin", f"HEAD:{target}", cwd=work, check=False)
    assert out.returncode != 0, out.stderr
    assert "balsam: refused" in out.stderr
    assert heads(ctx, shared) == ["main"]
    assert ctx.providers.git.repository_path(shared).joinpath(target).exists() is False


def test_a_member_cannot_force_push_the_default_branch(
    live_url: str, bob: TestUser, shared: str, ctx: AppContext, tmp_path: Path
) -> None:
    work = clone(live_url, shared, bob, tmp_path / "w")
    before = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    git(*IDENT, "commit", "-q", "--amend", "-m", "rewritten", cwd=work)
    out = git("push", "--force", "origin", "main", cwd=work, check=False)
    assert out.returncode != 0 and "only project owners can rewrite" in out.stderr
    assert git("ls-remote", "origin", "refs/heads/main", cwd=work).stdout.split()[0] == before
    # Moving forward is fine.
    git("reset", "-q", "--hard", before, cwd=work)
    after = commit(work, "forward.txt")
    git("push", "-q", "origin", "main", cwd=work)
    assert git("ls-remote", "origin", "refs/heads/main", cwd=work).stdout.split()[0] == after


def test_the_owner_may_force_push_and_the_audit_says_what_was_overwritten(
    live_url: str, alice: TestUser, project: dict[str, Any], ctx: AppContext, tmp_path: Path
) -> None:
    pid = project["id"]
    work = clone(live_url, pid, alice, tmp_path / "w")
    before = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    git(*IDENT, "commit", "-q", "--amend", "-m", "rewritten", cwd=work)
    after = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    git("push", "-q", "--force", "origin", "main", cwd=work)
    event = last_push(ctx, pid)  # written before git answered
    assert event.actor == alice.username and event.outcome == "success"
    assert event.details["updates"] == [
        {"ref": "refs/heads/main", "old": before, "new": after, "forced": True}
    ]


def last_push(ctx: AppContext, pid: str) -> AuditEvent:
    """The project's newest push record (written just after git answered)."""
    deadline = time.monotonic() + 10
    while True:
        with ctx.sessions() as session:
            event = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.project_id == pid, AuditEvent.action == "git.push")
                .order_by(AuditEvent.id.desc())
            ).first()
        if event is not None or time.monotonic() > deadline:
            assert event is not None, "no git.push record"
            return event
        time.sleep(0.05)


def test_nobody_deletes_the_default_branch_by_push(
    live_url: str, alice: TestUser, project: dict[str, Any], ctx: AppContext, tmp_path: Path
) -> None:
    work = clone(live_url, project["id"], alice, tmp_path / "w")
    out = git("push", "origin", ":main", cwd=work, check=False)
    assert out.returncode != 0 and "default branch cannot be deleted" in out.stderr
    assert heads(ctx, project["id"]) == ["main"]


def test_branches_pushed_and_deleted_appear_in_and_vanish_from_the_api(
    live_url: str, alice: TestUser, bob: TestUser, shared: str, tmp_path: Path
) -> None:
    api = f"/api/v1/projects/{shared}/branches"
    work = clone(live_url, shared, bob, tmp_path / "w")
    commit(work, "b.txt")
    git("push", "-q", "origin", "HEAD:refs/heads/feature-1", cwd=work)
    assert "feature-1" in [b["id"] for b in bob.client.get(api).json()]
    assert bob.client.get(f"{api}/feature-1/files").status_code == 200
    # A member may not delete it (as in the API); its owner may.
    out = git("push", "origin", ":feature-1", cwd=work, check=False)
    assert out.returncode != 0 and "only project owners can delete" in out.stderr
    owner = clone(live_url, shared, alice, tmp_path / "o")
    git("push", "-q", "origin", ":feature-1", cwd=owner)
    assert "feature-1" not in [b["id"] for b in alice.client.get(api).json()]
    assert alice.client.get(f"{api}/feature-1/files").status_code == 404


def test_members_cannot_delete_branches_through_the_api_either(
    alice: TestUser, bob: TestUser, shared: str
) -> None:
    api = f"/api/v1/projects/{shared}/branches"
    assert alice.client.post(api, json={"name": "scratch"}).status_code == 201
    r = bob.client.delete(f"{api}/scratch")
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert alice.client.delete(f"{api}/scratch").status_code == 204


def test_members_create_tags_and_only_owners_move_or_delete_them(
    live_url: str, alice: TestUser, bob: TestUser, shared: str, tmp_path: Path
) -> None:
    work = clone(live_url, shared, bob, tmp_path / "w")
    git("tag", "v1", cwd=work)
    git("push", "-q", "origin", "v1", cwd=work)
    commit(work, "c.txt")
    git("tag", "-f", "v1", cwd=work)
    out = git("push", "-f", "origin", "v1", cwd=work, check=False)
    assert out.returncode != 0 and "only project owners can move or delete tags" in out.stderr
    out = git("push", "origin", ":refs/tags/v1", cwd=work, check=False)
    assert out.returncode != 0 and "only project owners" in out.stderr
    owner = clone(live_url, shared, alice, tmp_path / "o")
    git("push", "-q", "origin", ":refs/tags/v1", cwd=owner)
    assert git("ls-remote", "--tags", "origin", cwd=owner).stdout.strip() == ""


def test_a_tag_named_like_a_branch_and_a_branch_like_a_tag_are_refused(
    live_url: str, bob: TestUser, shared: str, tmp_path: Path
) -> None:
    """``main`` as a tag would win over the branch in every clone (git picks the tag)."""
    work = clone(live_url, shared, bob, tmp_path / "w")
    out = git("push", "origin", "HEAD:refs/tags/main", cwd=work, check=False)
    assert out.returncode != 0 and "a branch named 'main' exists" in out.stderr
    git("push", "-q", "origin", "HEAD:refs/tags/v2", cwd=work)
    out = git("push", "origin", "HEAD:refs/heads/v2", cwd=work, check=False)
    assert out.returncode != 0 and "a tag named 'v2' exists" in out.stderr
    tags = git("ls-remote", "--tags", "origin", cwd=work).stdout
    assert "refs/tags/main" not in tags and "refs/tags/v2" in tags


def test_a_branch_deleted_by_push_keeps_its_data_as_one_deleted_through_the_api(
    live_url: str, alice: TestUser, project: dict[str, Any], ctx: AppContext, tmp_path: Path
) -> None:
    """Its objects vanish from listings (a branch of that name made later starts
    empty) and are kept as versions for the retention period; a review saw them stay
    current and never purged."""
    pid, bucket = project["id"], project["bucket"]
    storage = ctx.providers.storage
    work = clone(live_url, pid, alice, tmp_path / "w")
    commit(work, "c.txt")
    git("push", "-q", "origin", "HEAD:refs/heads/viapush", cwd=work)
    storage.put_object(bucket, "viapush/data/x.csv", b"a,b\n1,2\n")
    git("push", "-q", "origin", ":viapush", cwd=work)
    assert storage.list_keys(bucket, "viapush/") == []
    kept = [v for v in storage.list_versions(bucket, "viapush/data/") if not v.is_delete_marker]
    assert [v.key for v in kept] == ["viapush/data/x.csv"]
