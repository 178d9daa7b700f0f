"""Git smart HTTP: a streaming bridge from a Starlette request to ``git http-backend``.

Only the smart protocol is served::

    GET  info/refs?service=git-upload-pack | git-receive-pack
    POST git-upload-pack
    POST git-receive-pack

Anything else (the dumb protocol: ``HEAD``, ``objects/...``, ``info/refs``
without a service) is answered 404. The caller authenticates and authorises;
:func:`git_service_of` tells it whether a request reads or writes.

How a request flows: ``git http-backend`` runs as a CGI child in its own
process group, which dies with Balsam (:mod:`balsam.children`). The request
body is streamed into its stdin chunk by chunk (chunked pushes included; a
gzip body is passed through for the backend to inflate) while its CGI headers
are read from stdout; the rest of stdout is then streamed back as a
:class:`~starlette.responses.StreamingResponse`.

The body is fully delivered before the response object is returned because
Starlette's ``StreamingResponse`` listens for disconnects on the same ASGI
``receive`` channel and would swallow body chunks. Smart HTTP is stateless
RPC (the backend reads the whole request before it answers), so nothing is
lost by not being full-duplex. If the client goes away, while sending or
while receiving, the whole process group is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Literal

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from balsam.children import group_dying_with_parent
from balsam.errors import ProviderError
from balsam.providers.git.local import git_environment

GitService = Literal["upload-pack", "receive-pack"]

#: Smart-HTTP endpoints (path after the repository) and the method each accepts.
_ENDPOINTS = {"info/refs": "GET", "git-upload-pack": "POST", "git-receive-pack": "POST"}
_CHUNK_BYTES = 64 * 1024
_MAX_HEAD_BYTES = 64 * 1024
_GIT_PROTOCOL = re.compile(r"[A-Za-z0-9=:._-]{1,256}\Z")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")

_log = logging.getLogger(__name__)


def git_service_of(path_info: str, query: str) -> GitService | None:
    """The git service a smart-HTTP request uses, or None if it is not one.

    ``receive-pack`` (``info/refs?service=git-receive-pack`` and
    ``POST git-receive-pack``) writes; ``upload-pack`` only reads. A query
    naming several different services is not a smart-HTTP request."""
    endpoint = path_info.removeprefix("/")
    if endpoint == "info/refs":
        named = set(urllib.parse.parse_qs(query).get("service", []))
        requested = named.pop() if len(named) == 1 else ""
    elif endpoint in _ENDPOINTS:
        requested = endpoint
    else:
        return None
    if requested == "git-upload-pack":
        return "upload-pack"
    if requested == "git-receive-pack":
        return "receive-pack"
    return None


async def git_http_response(
    request: Request,
    *,
    repo_path: Path,
    path_info: str,
    remote_user: str,
    allow_push: bool,
    config: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    body_idle_seconds: float = 60,
) -> Response:
    """Answer a smart-HTTP request for the bare repository at ``repo_path``.

    ``path_info`` is the part of the URL after the repository (``/info/refs``,
    ``/git-upload-pack``, ``/git-receive-pack``); anything else is 404, a
    wrong method 405, and a push (including its ref advertisement) is 403
    unless ``allow_push``. ``remote_user`` is recorded by git as the pusher.
    ``config`` adds git configuration (e.g. ``core.hooksPath``) and
    ``environment`` variables that git and its hooks see. A body that pauses for
    ``body_idle_seconds`` ends the request (408).
    Raises ProviderError if git cannot be started."""
    endpoint = path_info.removeprefix("/")
    service = git_service_of(path_info, request.url.query)
    if service is None:
        return PlainTextResponse("Not found: only git smart HTTP is served\n", status_code=404)
    if request.method != _ENDPOINTS[endpoint]:
        allowed = _ENDPOINTS[endpoint]
        return PlainTextResponse(
            "Method not allowed\n", status_code=405, headers={"Allow": allowed}
        )
    if service == "receive-pack" and not allow_push:
        return PlainTextResponse("Push not allowed\n", status_code=403)
    env = _cgi_environment(request, repo_path, endpoint, service, remote_user, allow_push)
    env.update(environment or {})
    _add_config(env, config or {})
    process = await _spawn_backend(env)
    return await _bridge(request, process, body_idle_seconds)


def _cgi_environment(
    request: Request,
    repo_path: Path,
    endpoint: str,
    service: GitService,
    remote_user: str,
    allow_push: bool,
) -> dict[str, str]:
    """CGI variables for ``git http-backend``; the query string is rebuilt from
    the validated service so the backend sees exactly what was authorised."""
    cgi = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": request.method,
        "GIT_PROJECT_ROOT": str(repo_path.parent),
        "PATH_INFO": f"/{repo_path.name}/{endpoint}",
        "QUERY_STRING": f"service=git-{service}" if endpoint == "info/refs" else "",
        "GIT_HTTP_EXPORT_ALL": "1",
        "REMOTE_USER": _UNPRINTABLE.sub("", remote_user),
        "REMOTE_ADDR": request.client.host if request.client else "",
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "http.receivepack",
        "GIT_CONFIG_VALUE_0": "true" if allow_push else "false",
        "GIT_CONFIG_KEY_1": "receive.fsckObjects",
        "GIT_CONFIG_VALUE_1": "true",
    }
    cgi.update(_body_variables(request))
    return git_environment(cgi)


def _add_config(env: dict[str, str], config: Mapping[str, str]) -> None:
    """Append ``config`` to the ``GIT_CONFIG_KEY_<n>``/``VALUE_<n>`` pairs in ``env``."""
    count = int(env.get("GIT_CONFIG_COUNT", "0"))
    for key, value in config.items():
        env[f"GIT_CONFIG_KEY_{count}"] = key
        env[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    env["GIT_CONFIG_COUNT"] = str(count)


def _body_variables(request: Request) -> dict[str, str]:
    """CONTENT_LENGTH (absent for chunked bodies: the backend reads to EOF),
    the content encoding, and the wire-protocol version the client asked for."""
    found = {}
    length = request.headers.get("content-length", "")
    if length.isdigit() and "chunked" not in request.headers.get("transfer-encoding", ""):
        found["CONTENT_LENGTH"] = length
    encoding = request.headers.get("content-encoding", "")
    if encoding:
        found["HTTP_CONTENT_ENCODING"] = _UNPRINTABLE.sub("", encoding)
    protocol = request.headers.get("git-protocol", "")
    if _GIT_PROTOCOL.match(protocol):
        found["GIT_PROTOCOL"] = found["HTTP_GIT_PROTOCOL"] = protocol
    return found


async def _spawn_backend(env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start ``git http-backend`` as the leader of a new process group, which
    dies as a whole (upload-pack, pack-objects and hooks included) with Balsam.
    asyncio forks from the event-loop thread, which lives as long as the server,
    so the parent-death signal never ends a request early."""
    try:
        return await asyncio.create_subprocess_exec(
            *group_dying_with_parent(["git", "http-backend"]),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise ProviderError("git http-backend could not be started") from exc


async def _bridge(
    request: Request, process: asyncio.subprocess.Process, body_idle_seconds: float
) -> Response:
    """Feed the body, read the CGI head, and stream the rest of stdout."""
    assert process.stdout is not None and process.stderr is not None
    stderr_task = asyncio.create_task(_log_stderr(process.stderr))
    feeder = asyncio.create_task(_feed_body(request, process, body_idle_seconds))
    try:
        head = await _read_cgi_head(process.stdout)
        fed = await feeder
    except BaseException:
        feeder.cancel()
        _kill(process)
        raise
    if fed == "gone":
        _kill(process)
        return Response(status_code=499)  # nobody is listening any more
    if fed == "idle":
        _kill(process)
        stderr_task.cancel()
        return PlainTextResponse("The request body stopped arriving.\n", status_code=408)
    if head is None:
        _kill(process)
        return PlainTextResponse("git http-backend failed\n", status_code=502)
    status, headers = head
    body = _stream_stdout(process, stderr_task)
    return StreamingResponse(body, status_code=status, headers=headers)


async def _feed_body(
    request: Request, process: asyncio.subprocess.Process, idle_seconds: float
) -> Literal["fed", "gone", "idle"]:
    """Copy the request body into the backend's stdin as it arrives, then
    close stdin. "gone" if the client disconnected, "idle" if it paused longer than
    ``idle_seconds`` (the backend is killed either way)."""
    assert process.stdin is not None
    chunks = request.stream().__aiter__()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), idle_seconds)
            except StopAsyncIteration:
                break
            if chunk:
                process.stdin.write(chunk)
                await process.stdin.drain()
    except TimeoutError:
        _kill(process)
        return "idle"
    except ClientDisconnect:
        _kill(process)
        return "gone"
    except (BrokenPipeError, ConnectionResetError):
        pass  # the backend stopped reading; its response says why
    finally:
        process.stdin.close()
    return "fed"


async def _read_cgi_head(stdout: asyncio.StreamReader) -> tuple[int, dict[str, str]] | None:
    """Parse CGI response headers up to the blank line; ``Status:`` becomes
    the status code (default 200). None if the output is not a valid head."""
    status, total = 200, 0
    headers: dict[str, str] = {}
    while True:
        line = await stdout.readline()
        total += len(line)
        if not line.endswith(b"\n") or total > _MAX_HEAD_BYTES:
            return None
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return status, headers
        name, _, value = text.partition(":")
        if name.strip().lower() != "status":
            headers[name.strip()] = value.strip()
        elif value.split()[:1] and value.split()[0].isdigit():
            status = int(value.split()[0])
        else:
            return None


async def _stream_stdout(
    process: asyncio.subprocess.Process, stderr_task: asyncio.Task[None]
) -> AsyncIterator[bytes]:
    """Yield the backend's stdout; kill the process group if the consumer
    stops early (client disconnect cancels the iteration)."""
    assert process.stdout is not None
    try:
        while chunk := await process.stdout.read(_CHUNK_BYTES):
            yield chunk
        await process.wait()
        await stderr_task
    finally:
        _kill(process)


async def _log_stderr(stderr: asyncio.StreamReader) -> None:
    """Drain the backend's stderr (so it never blocks) and log what it said."""
    text = (await stderr.read()).decode("utf-8", "replace").strip()
    if text:
        _log.info("git http-backend: %s", text[:4000])


def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the backend's process group (it and the git it spawned) if it
    is still running."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
