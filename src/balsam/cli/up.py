"""``balsam up``: run the platform on this machine until Ctrl-C or SIGTERM.

``kill -HUP`` (or ``balsam restart``) restarts it in place instead: it shuts down as for
Ctrl-C but leaves running workspaces alone, then executes itself again with the same
command line and environment, which re-attaches them (kernels keep their state; the
browser's JupyterLab reconnects). Configuration and code changes take effect so.

Start-up order, each step undone in reverse on the way out: lock the data
directory (one ``balsam up`` per data dir), take the ports back from workspaces
that listen on them (as root: :mod:`balsam.ports`), bind the control-plane port,
start the embedded SeaweedFS (for ``storage.provider = seaweedfs``), build the
app, make sure an admin exists, then serve with uvicorn. A refusal to start
(lock held, port taken, a storage port taken) exits with code 2 and one line.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import logging
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import click
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError

from balsam.app import create_app
from balsam.cli.settings_cmd import load_settings
from balsam.context import AppContext
from balsam.db.engine import make_engine
from balsam.db.migrate import MigrationFailed, upgrade_in_child
from balsam.domain.identity.passwords import check_password_policy
from balsam.domain.identity.service import IdentityService
from balsam.domain.workspaces.templates import load_templates
from balsam.embedded import EmbeddedServiceError, SeaweedServer, load_or_create_admin_credentials
from balsam.embedded.supervisor import Supervisor
from balsam.errors import InvalidInput
from balsam.heap import keep_heap_small
from balsam.hostuids import HostUidRegistry, UidRegistryError
from balsam.ports import reclaim
from balsam.settings import Settings
from balsam.web.http_protocol import ProblemHttpToolsProtocol
from balsam.web.origins import workspace_hosts
from balsam.web.ws_protocol import RefusingWebSocketsProtocol

log = logging.getLogger("balsam.up")
LOCK_NAME = "balsam.lock"


class Refused(click.ClickException):
    """``balsam up`` will not start; the message says why."""

    exit_code = 2


@click.command()
@click.option(
    "--host", default=None, help="Address to bind (default: BALSAM_HOST, else 127.0.0.1)."
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Control-plane port (default: BALSAM_PORT, else 8080).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default: BALSAM_DATA_DIR, else .balsam).",
)
def up(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Start Balsam: storage, database and web API, until Ctrl-C."""
    keep_heap_small()
    settings = load_settings(host=host, port=port, data_dir=data_dir)
    check_admin_password(settings)
    check_templates(settings)
    check_database(settings)
    # SIGTERM behaves like Ctrl-C, so every cleanup below runs on either.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    restart = _Restart()
    signal.signal(signal.SIGHUP, restart.request)
    try:
        with ExitStack() as stack:
            stack.enter_context(data_dir_lock(prepare_data_dir(settings.data_dir)))
            listeners = stack.enter_context(listen_taking_back(settings))
            settings = with_storage_credentials(settings)
            stack.enter_context(embedded_storage(settings))
            migrate(settings)
            app = create_app(settings)
            stack.callback(app.state.ctx.engine.dispose)
            announce(settings, ensure_admin(app.state.ctx, settings))
            restart.app = app
            serve(app, settings, listeners, restart)
    except KeyboardInterrupt:
        pass
    if restart.requested:
        log.info("Balsam restarts (workspaces keep running)")
        os.execv(sys.executable, sys.orig_argv)  # noqa: S606 - our own command line, again
    log.info("Balsam stopped")


class _Restart:
    """A restart asked for by SIGHUP: the server shuts down gracefully (as for Ctrl-C),
    the workspace supervisor leaves workspaces running, then :func:`up` executes itself
    again. Before the server runs, the request waits for it."""

    def __init__(self) -> None:
        self.requested = False
        self.app: FastAPI | None = None
        self.server: uvicorn.Server | None = None

    def request(self, signum: int, frame: object) -> None:
        self.requested = True
        self.apply()

    def apply(self) -> None:
        if not self.requested or self.server is None or self.app is None:
            return
        self.app.state.ctx.supervisor.keep_workspaces = True
        self.server.should_exit = True


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory of the `balsam up` to restart (default: BALSAM_DATA_DIR, else .balsam).",
)
@click.option("--timeout", type=float, default=300, help="Seconds to wait for it to be ready.")
def restart(data_dir: Path | None, timeout: float) -> None:
    """Restart the `balsam up` of a data directory in place (as `kill -HUP`): running
    workspaces keep running, with their kernels; settings and code are read anew."""
    settings = load_settings(data_dir=data_dir)
    lock = settings.data_dir.resolve() / LOCK_NAME
    pid = _running_pid(lock)
    before = lock.stat().st_mtime_ns
    os.kill(pid, signal.SIGHUP)
    click.echo(f"asked balsam up (pid {pid}) to restart; waiting for it")
    deadline = time.monotonic() + timeout
    while lock.stat().st_mtime_ns == before:  # the new process writes it when it starts
        if time.monotonic() > deadline:
            raise click.ClickException("balsam up did not start again in time")
        time.sleep(0.2)
    url = f"http://{_loopback(settings.host)}:{settings.port}/api/v1/health/ready"
    while not _answers(url):
        if time.monotonic() > deadline:
            raise click.ClickException(f"balsam up restarted but {url} is not ready yet")
        time.sleep(0.5)
    click.echo("balsam up restarted and ready")


def _running_pid(lock: Path) -> int:
    """The pid of the `balsam up` holding ``lock``; ClickException if none does."""
    try:
        handle = lock.open()
    except FileNotFoundError:
        raise click.ClickException(f"no balsam up has run on {lock.parent}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            if text.isdigit():
                return int(text)
            raise click.ClickException(f"{lock} names no process") from None
    raise click.ClickException(f"no balsam up runs on {lock.parent}")


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host.strip("[]")  # noqa: S104


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - our own URL
            return bool(answer.status == 200)
    except (OSError, ValueError):
        return False


def check_admin_password(settings: Settings) -> None:
    """Refuse, before anything is created or migrated, an admin password that the
    password policy would refuse later."""
    if settings.admin_password is None:
        return
    try:
        check_password_policy(
            settings.admin_password.get_secret_value(),
            username=settings.admin_username,
            min_length=settings.auth.password_min_length,
        )
    except InvalidInput as exc:
        raise Refused(f"BALSAM_ADMIN_PASSWORD: {exc.message}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def check_templates(settings: Settings) -> None:
    """Refuse, before anything is started, a workspace templates file that cannot
    be read or is not a list of templates."""
    path = settings.workspaces.templates_file
    try:
        load_templates(path)
    except (OSError, ValueError) as exc:  # JSON and validation errors are ValueErrors
        raise Refused(
            f"BALSAM_WORKSPACES__TEMPLATES_FILE: cannot use {path}: {_first_line(exc)}"
        ) from None


def check_database(settings: Settings) -> None:
    """Refuse, before anything is started or migrated, a database URL Balsam cannot
    connect to (SQLite files are created on first use, in the data directory)."""
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        return
    engine = None
    try:
        engine = make_engine(url)
        with engine.connect():
            pass
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        # The driver's words only: the URL, with its password, is never repeated.
        raise Refused(
            f"BALSAM_DATABASE_URL: cannot connect ({type(exc).__name__}: "
            f"{_first_line(getattr(exc, 'orig', None) or exc)})"
        ) from None
    finally:
        if engine is not None:
            engine.dispose()


def migrate(settings: Settings) -> None:
    """Bring the database to this release's schema in a child process: the server's
    own process then never loads Alembic (its memory is measured, see bench/)."""
    try:
        upgrade_in_child(settings.resolved_database_url)
    except MigrationFailed as exc:
        raise Refused(f"the database could not be migrated: {exc}") from None


def prepare_data_dir(path: Path) -> Path:
    """Create the data directory, readable by its owner only. Files Balsam creates
    are private by default (umask 077); what workspaces must read is opened
    explicitly (their homes, template environments)."""
    os.umask(0o077)
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<data_dir>/balsam.lock`` for as long as Balsam runs.

    The kernel drops the lock when the process dies, however it dies, so a stale
    lock file never blocks a restart.
    """
    handle: IO[str] = (data_dir / LOCK_NAME).open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise Refused(
                f"the data directory {data_dir} is in use by another "
                f"`balsam up` (pid {holder}); stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def uid_registry(settings: Settings) -> HostUidRegistry | None:
    """The host-wide uid registry, as root; None otherwise (workspaces then run
    as Balsam's own user)."""
    if os.geteuid() != 0:
        return None
    return HostUidRegistry(settings.uid_registry_dir, base=settings.workspaces.uid_base)


def reclaim_from_workspaces(settings: Settings, ports: Collection[int], what: str) -> None:
    """As root, stop workspaces that listen on ports Balsam needs (see
    :mod:`balsam.ports`): one may have taken them while Balsam was down."""
    registry = uid_registry(settings)
    if registry is not None:
        reclaim(ports, registry.is_workspace, what=what)


@contextmanager
def listen_taking_back(settings: Settings, attempts: int = 20) -> Iterator[list[socket.socket]]:
    """:func:`bound_sockets` on the control-plane port and the workspace port, after
    taking each back from any workspace listening there; again while one takes it
    meanwhile (a killed squatter's socket may also take a moment to go)."""
    ports = [settings.port] + ([settings.workspace_port] if settings.workspace_port else [])
    with ExitStack() as stack:
        listening: list[socket.socket] = []
        for port in ports:
            listening += stack.enter_context(_taking_back(settings, port, attempts))
        yield listening


@contextmanager
def _taking_back(settings: Settings, port: int, attempts: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        for attempt in range(attempts):
            reclaim_from_workspaces(settings, [port], "Balsam")
            try:
                listening = stack.enter_context(bound_sockets(settings.host, port))
                break
            except Refused:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.1)
        yield listening


@contextmanager
def bound_sockets(host: str, port: int) -> Iterator[list[socket.socket]]:
    """The listening sockets: ``host``'s, and for 127.0.0.1 also ``[::1]``'s where
    the host has IPv6, since browsers try ``localhost`` at ``::1`` first: a port
    left free there could be taken by a workspace and answer in Balsam's place."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(bound_socket(host, port))]
        if host == "127.0.0.1":
            twin = _ipv6_loopback_twin(port)
            if twin is not None:
                sockets.append(stack.enter_context(twin))
        yield sockets


def _ipv6_loopback_twin(port: int) -> socket.socket | None:
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:  # no IPv6 at all
        return None
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::1", port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRNOTAVAIL:  # ::1 exists but is taken: say so
            log.warning(
                "[::1]:%d is taken by another program: browsers that open localhost "
                "may reach it instead of Balsam (%s)", port, exc.strerror or exc,
            )  # fmt: skip
        return None
    return sock


@contextmanager
def bound_socket(host: str, port: int) -> Iterator[socket.socket]:
    """The control-plane listening socket, bound and listening now, so a taken
    port refuses early and nothing can take it meanwhile (uvicorn serves on this
    very socket). Listening at once also means a client that connects while
    storage starts waits in the backlog instead of being refused, and cannot
    end up connected to itself (a client whose ephemeral source port is this
    unlistened port would)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog; it listens again, harmlessly
    except OSError as exc:
        sock.close()
        raise Refused(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "is another server using that port? Choose one with --port."
        ) from None
    with sock:
        yield sock


def with_storage_credentials(settings: Settings) -> Settings:
    """For the embedded SeaweedFS without a configured admin key: the key kept in
    ``<data_dir>/storage/admin.json`` (created on first start)."""
    storage = settings.storage
    if storage.provider != "seaweedfs" or (storage.admin_access_key and storage.admin_secret_key):
        return settings
    access, secret = load_or_create_admin_credentials(storage_dir(settings) / "admin.json")
    storage = storage.model_copy(
        update={"admin_access_key": access, "admin_secret_key": SecretStr(secret)}
    )
    return settings.model_copy(update={"storage": storage})


def storage_dir(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "storage"


@contextmanager
def embedded_storage(settings: Settings) -> Iterator[None]:
    """Run SeaweedFS as a supervised child process while Balsam runs (only for
    provider 'seaweedfs'): restarted when it crashes, killed by the kernel when
    this process dies (even by ``kill -9``), and a weed an earlier, killed
    ``balsam up`` left on this data dir is stopped first."""
    storage = settings.storage
    if storage.provider != "seaweedfs":
        yield
        return
    assert storage.admin_access_key and storage.admin_secret_key  # with_storage_credentials
    try:
        server = SeaweedServer.from_settings(
            storage_dir(settings),
            storage,
            admin_access_key=storage.admin_access_key,
            admin_secret_key=storage.admin_secret_key.get_secret_value(),
            run_as_uid=seaweed_uid(settings),
        )
    except ValueError as exc:  # e.g. a port whose gRPC twin (port + 10000) is above 65535
        raise Refused(f"invalid SeaweedFS ports in BALSAM_STORAGE__*: {exc}") from None
    server.reclaim_ports = lambda ports: reclaim_from_workspaces(settings, ports, "SeaweedFS")
    log.info("Starting SeaweedFS (S3 at %s, log %s)", server.endpoint_url, server.log_path)
    # Supervised: restarted with backoff when it dies; it dies with this process.
    supervisor = Supervisor(server, name="SeaweedFS")
    try:
        supervisor.start()
    except EmbeddedServiceError as exc:
        raise Refused(str(exc)) from None
    try:
        yield
    finally:
        # A second Ctrl-C must not orphan weed halfway through its shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.info("Stopping SeaweedFS")
        supervisor.stop()


def seaweed_uid(settings: Settings) -> int | None:
    """As root: the host-wide uid weed runs as (one per data dir), so no workspace
    uid can reach its files or sockets. Keeps the uid an earlier start gave it
    (the owner of the storage dir) when the registry agrees. None when not root."""
    if os.geteuid() != 0:
        return None
    registry = uid_registry(settings)
    assert registry is not None  # root
    folder = storage_dir(settings)
    owner = f"{folder}#seaweedfs"
    previous = folder.stat().st_uid if folder.exists() else 0
    try:
        if previous and registry.adopt(previous, owner):
            return previous
        return registry.claim(owner, avoid={previous} - {0})
    except UidRegistryError as exc:
        raise Refused(f"no uid for SeaweedFS: {exc}") from None


def ensure_admin(ctx: AppContext, settings: Settings) -> str | None:
    """Create the first admin if there is none; the generated password, if any."""
    password = settings.admin_password.get_secret_value() if settings.admin_password else None
    return IdentityService(ctx).ensure_admin(settings.admin_username, password)


def announce(settings: Settings, generated_password: str | None) -> None:
    """Tell the person at the terminal how to get in (stdout only, never the log)."""
    url = settings.resolved_public_url
    if not settings.public_url and settings.host == "127.0.0.1":
        # What the README says, and one name throughout: the browser's cookies belong
        # to the name typed (localhost and 127.0.0.1 are two sites to it).
        url = f"http://localhost:{settings.port}"
    port, parts = settings.workspace_port, urlsplit(url)
    host = (workspace_hosts(settings) or parts.hostname or "").replace("*", "<workspace>", 1)
    workspaces = settings.workspaces.public_url or (
        f"{parts.scheme}://{host}:{port} (each a site of its own; opened from the portal)"
        if port
        else None
    )
    user = settings.admin_username
    lines = ["", f"Balsam is starting at {url}", f"  admin user:     {user}"]
    if generated_password:
        lines.append(
            f"  admin password: {generated_password}   "
            "(generated now and shown only this once: keep it)"
        )
    oidc = settings.oidc
    if oidc.enabled:
        lines += [
            f"  sign in:        with {oidc.button_label} ({oidc.issuer}); register there:",
            f"    redirect URI            {url}/login/oidc/callback",
            f"    post-logout redirect    {url}/logged-out",
            f"    back-channel logout     {url}/login/oidc/backchannel-logout",
        ]
    if oidc.password_login:
        lines += [
            "  get an API token:",
            f"    curl -u {user} -X POST {url}/api/v1/users/me/tokens \\",
            "         -H 'Content-Type: application/json' -d '{\"name\": \"cli\"}'",
        ]
    else:
        lines.append(
            "  get an API token: sign in, then My account (password sign-in is off; "
            "the admin account is for the command line)"
        )
    lines += [
        f"  API docs:       {url}/api/v1/docs",
        f"  workspaces:     {workspaces}" if workspaces else "  workspaces:     on this origin",
        "",
    ]
    click.echo("\n".join(lines))


class HideSignInCodes(logging.Filter):
    """Keeps the identity provider's authorization codes (and states) out of the access
    log: the callback's query is logged as ``?…``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, sep, _query = args[2].partition("?")
            if sep and path.startswith("/login/oidc/"):
                record.args = (*args[:2], f"{path}?…", *args[3:])
        return True


def serve(
    app: FastAPI, settings: Settings, listeners: list[socket.socket], restart: _Restart
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn re-raises the signal after its graceful
    shutdown, which unwinds :func:`up`'s cleanups) or a restart (SIGHUP)."""
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout: the banner only
    log_config.setdefault("filters", {})["sign_in"] = {"()": HideSignInCodes}
    log_config["handlers"]["access"]["filters"] = ["sign_in"]
    config = uvicorn.Config(
        app=app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=log_config,
        proxy_headers=False,
        http=ProblemHttpToolsProtocol,
        ws=RefusingWebSocketsProtocol,
    )
    server = restart.server = uvicorn.Server(config)
    restart.apply()  # a SIGHUP that came while starting
    server.run(sockets=listeners)
