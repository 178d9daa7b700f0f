"""Imports from URLs, run in-process against the real SeaweedFS and a real HTTP server
on loopback: limits and failures leave nothing behind, redirects and DNS answers
cannot lead a fetch to a private address, and an import a crash cut short is settled
at the next start."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import AuditEvent, DataImport, utcnow
from balsam.domain.data.import_runs import INTERRUPTED, claim, claim_next, run_import
from balsam.domain.data.import_schemas import ImportCreate, ImportPublic
from balsam.domain.data.import_worker import ImportWorker
from balsam.domain.data.imports import ImportService
from balsam.domain.data.service import DataService
from balsam.domain.journal import this_process
from balsam.domain.recovery import recover
from balsam.errors import InvalidInput
from balsam.providers.storage.objects import PART_SIZE
from balsam.settings import ImportSettings
from balsam.wiring import derive
from tests.fixtures.app import TestUser
from tests.fixtures.http_source import Answer, Source, http_source, import_worker_paused

#: A process of this host that cannot exist (a pid above the kernel's most).
DEAD = f"{socket.gethostname()}:999999999:0"


@pytest.fixture(autouse=True)
def _paused(app: FastAPI) -> Iterator[None]:
    with import_worker_paused(app):
        yield


@pytest.fixture
def source() -> Iterator[Source]:
    with http_source() as served:
        yield served


@pytest.fixture
def allowing(ctx: AppContext) -> AppContext:
    """The app's context with 'localhost' allowed, a small size limit and short waits."""
    settings = ctx.settings.model_copy(
        update={
            "source_private_hosts": ["localhost"],
            "imports": ImportSettings(
                max_bytes=PART_SIZE + 1000,
                connect_timeout_seconds=2,
                read_timeout_seconds=5,
                total_seconds=30,
                max_redirects=3,
            ),
        }
    )
    return derive(ctx, settings=settings)


def _import(
    ctx: AppContext, user: TestUser, project: dict[str, Any], url: str, target: str
) -> ImportPublic:
    body = ImportCreate(url=url, target=target)
    created = ImportService(ctx).create(user.actor, project["id"], body)
    assert created.state == "queued"
    assert claim(ctx, created.id)
    run_import(ctx, created.id)
    return ImportService(ctx).get(user.actor, project["id"], created.id)


def _nothing_at(ctx: AppContext, project: dict[str, Any], path: str) -> bool:
    objects = ctx.providers.storage.objects
    return objects.head(project["bucket"], path) is None and not objects.uploads_in_progress(
        project["bucket"], path
    )


def test_a_small_and_a_multi_part_import_arrive_whole(
    allowing: AppContext, alice: TestUser, project: dict[str, Any], source: Source
) -> None:
    body = os.urandom(PART_SIZE + 500)  # two parts
    source.answers["/big.bin"] = Answer(body=body, chunked=True)
    done = _import(allowing, alice, project, source.url("/big.bin", "localhost"), "main/big.bin")
    assert done.state == "succeeded", done.error
    assert done.size == len(body)
    info, chunks = allowing.providers.storage.objects.open(project["bucket"], "main/big.bin") or (
        None,
        iter(()),
    )
    assert info is not None and b"".join(chunks) == body


UNDER_WAY = ("queued", "running")


def test_the_worker_runs_what_is_queued(
    allowing: AppContext, alice: TestUser, project: dict[str, Any], source: Source
) -> None:
    source.answers["/w"] = Answer(body=b"queued")
    body = ImportCreate(url=source.url("/w", "localhost"), target="main/w")
    created = ImportService(allowing).create(alice.actor, project["id"], body)
    worker = ImportWorker(allowing, poll=0.2)
    worker.start()
    try:
        worker.wake()
        deadline = time.monotonic() + 20
        service = ImportService(allowing)
        while (done := service.get(alice.actor, project["id"], created.id)).state in UNDER_WAY:
            assert time.monotonic() < deadline, done
            time.sleep(0.1)
    finally:
        worker.stop()
    assert not worker.running
    assert done.state == "succeeded" and done.size == len(b"queued"), done


@pytest.mark.parametrize("status", [404, 500])
def test_a_source_that_fails_leaves_nothing(
    allowing: AppContext, alice: TestUser, project: dict[str, Any], source: Source, status: int
) -> None:
    source.answers["/x.csv"] = Answer(status, b"nope")
    done = _import(allowing, alice, project, source.url("/x.csv", "localhost"), "main/x.csv")
    assert done.state == "failed" and f"HTTP {status}" in (done.error or "")
    assert _nothing_at(allowing, project, "main/x.csv")


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_fails_and_leaves_nothing(
    allowing: AppContext, alice: TestUser, project: dict[str, Any], source: Source, chunked: bool
) -> None:
    # Chunked: no Content-Length, so one part has gone to storage before the limit hits.
    source.answers["/huge"] = Answer(body=b"x" * (PART_SIZE + 2000), chunked=chunked)
    done = _import(allowing, alice, project, source.url("/huge", "localhost"), "main/huge")
    assert done.state == "failed" and "larger than" in (done.error or ""), done
    assert _nothing_at(allowing, project, "main/huge")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        # Bytes keep coming, but the whole takes longer than total_seconds (3).
        (Answer(body=b"x" * 40, chunked=True, chunk_size=1, pause=0.1), "took longer"),
        # Nothing for longer than read_timeout_seconds (1).
        (Answer(body=b"x", chunked=True, pause=2.5), "did not answer in time"),
    ],
)
def test_a_slow_source_fails_and_leaves_nothing(
    allowing: AppContext,
    alice: TestUser,
    project: dict[str, Any],
    source: Source,
    answer: Answer,
    error: str,
) -> None:
    impatient = derive(
        allowing,
        settings=allowing.settings.model_copy(
            update={
                "imports": allowing.settings.imports.model_copy(
                    update={"read_timeout_seconds": 1, "total_seconds": 3}
                )
            }
        ),
    )
    source.answers["/slow"] = answer
    done = _import(impatient, alice, project, source.url("/slow", "localhost"), "main/slow")
    assert done.state == "failed" and error in (done.error or ""), done
    assert _nothing_at(allowing, project, "main/slow")


def test_a_redirect_to_a_private_address_is_not_followed(
    allowing: AppContext, alice: TestUser, project: dict[str, Any], source: Source
) -> None:
    with http_source() as inner:
        inner.answers["/secret"] = Answer(body=b"internal")
        source.answers["/go"] = Answer(302, headers={"Location": inner.url("/secret")})
        done = _import(allowing, alice, project, source.url("/go", "localhost"), "main/r")
        assert done.state == "failed" and "private or local" in (done.error or ""), done
        assert inner.requests == [] and source.requests == ["/go"]
    assert _nothing_at(allowing, project, "main/r")


def test_a_redirect_loop_ends(
    allowing: AppContext, alice: TestUser, project: dict[str, Any], source: Source
) -> None:
    source.answers["/loop"] = Answer(302, headers={"Location": "/loop"})
    done = _import(allowing, alice, project, source.url("/loop", "localhost"), "main/l")
    assert done.state == "failed" and "redirects" in (done.error or "")
    assert len(source.requests) == 4  # the first and three redirects


def _resolving(monkeypatch: pytest.MonkeyPatch, name: str, answers: list[str]) -> list[str]:
    """Make ``name`` resolve to each of ``answers`` in turn (the last one from then on);
    the addresses it was resolved to, as the resolver answered them."""
    real = socket.getaddrinfo
    given: list[str] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kwargs)
        address = answers[min(len(given), len(answers) - 1)]
        given.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 80)))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return given


def test_a_name_that_turns_private_after_the_check_is_never_connected_to(
    allowing: AppContext,
    alice: TestUser,
    project: dict[str, Any],
    source: Source,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source.answers["/data"] = Answer(body=b"internal")
    # Public when asked for and when the worker checks it; loopback (where the source
    # listens) for anyone who asks again to connect.
    public = "192.0.43.10"
    given = _resolving(monkeypatch, "rebind.example", [public, public, "127.0.0.1"])
    url = f"http://rebind.example:{source.port}/data"
    created = ImportService(allowing).create(
        alice.actor, project["id"], ImportCreate(url=url, target="main/rebound")
    )
    assert claim(allowing, created.id)
    run_import(allowing, created.id)
    done = ImportService(allowing).get(alice.actor, project["id"], created.id)
    assert done.state == "failed", done
    assert source.requests == [] and given == [public, public]
    assert _nothing_at(allowing, project, "main/rebound")


def test_a_name_that_is_private_when_it_runs_is_refused(
    allowing: AppContext,
    alice: TestUser,
    project: dict[str, Any],
    source: Source,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The reverse order: public when asked for, private when the worker checks it.
    source.answers["/data"] = Answer(body=b"internal")
    _resolving(monkeypatch, "later.example", ["192.0.43.10", "127.0.0.1"])
    url = f"http://later.example:{source.port}/data"
    created = ImportService(allowing).create(
        alice.actor, project["id"], ImportCreate(url=url, target="main/later")
    )
    assert claim(allowing, created.id)
    run_import(allowing, created.id)
    done = ImportService(allowing).get(alice.actor, project["id"], created.id)
    assert done.state == "failed" and "private or local" in (done.error or ""), done
    assert source.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://[::1]:9/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/x",
        "http://user:secret@example.org/x",
        "ftp://example.org/x",
        "file:///etc/passwd",
        "http:///nohost",
        "not a url",
    ],
)
def test_urls_outside_the_rule_are_refused_when_asked_for(
    ctx: AppContext, alice: TestUser, project: dict[str, Any], url: str
) -> None:
    with pytest.raises(InvalidInput):
        ImportService(ctx).create(
            alice.actor, project["id"], ImportCreate(url=url, target="main/x")
        )


def _running_row(
    ctx: AppContext, project: dict[str, Any], target: str, upload_id: str | None
) -> str:
    row = DataImport(
        id=secrets.token_urlsafe(16),
        project_id=project["id"],
        url="https://example.org/data.bin",
        target=target,
        state="running",
        created_by="alice",
        request_id="r1",
        process=DEAD,
        started_at=utcnow(),
        upload_id=upload_id,
    )
    with ctx.sessions() as session, session.begin():
        session.add(row)
    return row.id


@pytest.mark.parametrize("recorded", [True, False])
def test_an_import_a_crash_cut_short_is_failed_and_its_upload_aborted(
    ctx: AppContext, project: dict[str, Any], recorded: bool
) -> None:
    """As if the process died after the first part went to storage; ``recorded``:
    whether it had written the multipart upload's id down yet."""
    objects = ctx.providers.storage.objects
    target = f"main/crashed-{recorded}.bin"
    upload = objects.upload(project["bucket"], target, content_type="x/y", metadata={})
    assert upload.add(os.urandom(PART_SIZE))
    upload.flush()
    assert objects.uploads_in_progress(project["bucket"], target)
    import_id = _running_row(ctx, project, target, upload.upload_id if recorded else None)

    recover(ctx)

    with ctx.sessions() as session:
        row = session.get(DataImport, import_id)
        assert row is not None and row.state == "failed" and row.error == INTERRUPTED
        audit = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "data.import", AuditEvent.outcome == "failure")
            .order_by(AuditEvent.id.desc())
        ).first()
    assert audit is not None and audit.details["importId"] == import_id
    assert audit.details["interrupted"] is True
    assert _nothing_at(ctx, project, target)


def test_an_import_cut_short_after_its_object_was_recorded_succeeded(
    ctx: AppContext, alice: TestUser, project: dict[str, Any]
) -> None:
    import_id = _running_row(ctx, project, "main/whole.bin", None)
    with ctx.sessions() as session:
        row = session.get(DataImport, import_id)
        assert row is not None
        url = row.url
    # As the write's finish left it, just before the process died.
    DataService(ctx).record(alice.actor, project["id"], "main/whole.bin", "v1", 5, "ab" * 32, url)
    recover(ctx)
    with ctx.sessions() as session:
        row = session.get(DataImport, import_id)
        assert row is not None and row.state == "succeeded" and row.size == 5
        assert row.sha256 == "ab" * 32 and row.version_id == "v1"


def test_an_import_of_a_live_process_is_left_alone(
    ctx: AppContext, project: dict[str, Any]
) -> None:
    import_id = _running_row(ctx, project, "main/alive.bin", None)
    with ctx.sessions() as session, session.begin():
        row = session.get(DataImport, import_id)
        assert row is not None
        row.process = this_process()
    recover(ctx)
    with ctx.sessions() as session:
        row = session.get(DataImport, import_id)
        assert row is not None and row.state == "running"


def test_a_user_with_an_import_running_waits_while_others_go_first(
    allowing: AppContext, alice: TestUser, bob: TestUser, make_user: Any, unique: Any,
    source: Source,
) -> None:  # fmt: skip
    """One member's slow imports must not hold every worker: a user with an import
    running has the next one wait, and another user's is taken first."""
    source.answers["/f"] = Answer(body=b"f")
    projects = {}
    for user in (alice, bob):
        made = user.client.post(
            "/api/v1/projects", json={"name": unique("Rättvisa "), "branchName": "main"}
        )
        projects[user.username] = made.json()["id"]
    url = source.url("/f", "localhost")

    def queue(user: TestUser, target: str) -> str:
        body = ImportCreate(url=url, target=target)
        return ImportService(allowing).create(user.actor, projects[user.username], body).id

    first, second, other = queue(alice, "main/1"), queue(alice, "main/2"), queue(bob, "main/3")
    assert claim_next(allowing) == first  # oldest first
    assert claim_next(allowing) == other  # alice has one running: bob's goes first
    assert claim_next(allowing) is None  # alice's second waits for her first
    run_import(allowing, first)
    assert claim_next(allowing) == second
    for done in (second, other):
        run_import(allowing, done)
