"""A whole Balsam platform for benchmarks: SeaweedFS + app + uvicorn, in a temp dir."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from balsam.app import build_context, create_app  # noqa: E402
from balsam.context import AppContext  # noqa: E402
from balsam.domain.identity.schemas import TokenCreate, UserCreate  # noqa: E402
from balsam.domain.identity.service import Actor, IdentityService  # noqa: E402
from balsam.embedded import SeaweedPorts, SeaweedServer  # noqa: E402
from balsam.settings import Settings  # noqa: E402
from tests.fixtures.server import free_port, serve  # noqa: E402


@dataclass
class Platform:
    ctx: AppContext
    url: str
    token: str
    actor: Actor
    seaweed: SeaweedServer

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


#: Where template environments are built; the benches reuse the one a test or an
#: earlier run built (a first build takes minutes and would dominate start times).
ENVIRONMENTS_DIR = ROOT / ".cache" / "environments"


@contextmanager
def platform(
    database_url: str | None = None,
    *,
    workspaces: bool = False,
    s3_iam_api: bool = False,
    port: int | None = None,
    **settings_overrides: Any,
) -> Iterator[Platform]:
    """Start everything in a temp dir; yield a user with a token; clean up.

    ``port`` and ``settings_overrides`` (more :class:`Settings` fields, e.g. ``oidc``)
    shape the app.

    ``s3_iam_api=True`` mints keys through the IAM API on weed's S3 port (provider
    's3-iam', as before issue 8) instead of the filer's IAM gRPC service.

    ``workspaces=True`` also runs the workspace supervisor (the app is served with
    ``lifespan="off"``, which would otherwise start it), builds or reuses template
    environments under ``BALSAM_WORKSPACES__ENVIRONMENTS_DIR`` (default
    ``.cache/environments``) and, as root, runs workspaces under a block of user ids
    of this process's own (``BALSAM_WORKSPACES__UID_BASE``). Every workspace still
    running is stopped on the way out.
    """
    if workspaces:
        os.environ.setdefault("BALSAM_WORKSPACES__ENVIRONMENTS_DIR", str(ENVIRONMENTS_DIR))
        # As root, each workspace runs under uid_base + n and stopping one kills every
        # process of its uid. Every fresh data dir counts from uid_base; ids in use are
        # skipped, but a stopped workspace keeps its id and two allocations can race,
        # so a bench and a concurrent test run could kill each other's servers: give
        # this platform a block of its own.
        os.environ.setdefault(
            "BALSAM_WORKSPACES__UID_BASE", str(1_000_000 + (os.getpid() % 1_000_000) * 100)
        )
    with tempfile.TemporaryDirectory(prefix="balsam-bench-") as tmp:
        # As root, workspaces run under their own user ids: they must be able to
        # traverse every folder above their home.
        os.chmod(tmp, 0o711)  # noqa: S103 - traversable, not listable
        access, secret = "BENCH" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30)
        seaweed = SeaweedServer(
            Path(tmp) / "s3",
            ports=SeaweedPorts.pick_free(),
            admin_access_key=access,
            admin_secret_key=secret,
            s3_iam_api=s3_iam_api,
        )
        with seaweed:
            port = port or free_port()
            storage: dict[str, Any] = {
                "endpoint_url": seaweed.endpoint_url,
                "admin_access_key": access,
                "admin_secret_key": secret,
                "provider": "s3-iam" if s3_iam_api else "seaweedfs",
                "filer_grpc_port": seaweed.ports.filer_grpc,
                "conf_dir": seaweed.conf_dir,
            }
            settings = Settings(
                data_dir=Path(tmp) / "data",
                port=port,
                database_url=database_url,
                storage=storage,
                # One socket serves all: the proxy's cost is what is measured.
                workspaces={"port": 0},
                **settings_overrides,
            )  # type: ignore[arg-type]
            ctx = build_context(settings)
            app = create_app(settings, ctx=ctx)
            identity = IdentityService(ctx)
            user = identity.create_user(
                None,
                UserCreate(username="bench", password=secrets.token_urlsafe(18), is_admin=True),
            )
            actor = Actor(user_id=user.id, username="bench", is_admin=True)
            _, token = identity.create_token(actor, TokenCreate(name="b", expires_in_days=1))
            with serve(app, port=port) as url:
                if not workspaces:
                    yield Platform(ctx=ctx, url=url, token=token, actor=actor, seaweed=seaweed)
                    return
                ctx.supervisor.start()
                try:
                    yield Platform(ctx=ctx, url=url, token=token, actor=actor, seaweed=seaweed)
                finally:
                    ctx.supervisor.shutdown()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
