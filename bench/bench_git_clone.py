"""Clone speed: git smart HTTP through Balsam's bridge versus ``file://``.

Builds a bare repository of small text files with :class:`LocalGitProvider`,
serves it through :func:`balsam.web.git_http.git_http_response` behind uvicorn
on loopback, and times ``git clone`` over HTTP and from the bare repository
path, interleaved. Prints medians, the ratio http/file (target <= 1.5) and a
final JSON line.

    PYTHONPATH=src .venv/bin/python bench/bench_git_clone.py --files 1000 --runs 9

``make_repo``, ``serve_app`` and ``time_clone`` are reusable: to measure the
full application, serve it with ``serve_app`` (or pass ``--http-url``) and
time clones of its ``/git/<project>.git`` URL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from balsam.providers.git.base import Author
from balsam.providers.git.local import LocalGitProvider, git_environment
from balsam.web.git_http import git_http_response

REPO_ID = "bench"
TARGET_RATIO = 1.5


def make_repo(root: Path, n_files: int, repo_id: str = REPO_ID) -> LocalGitProvider:
    """Create ``root/<repo_id>.git`` holding ``n_files`` small text files
    spread over ten folders, in one commit on ``main``."""
    files = {
        f"folder-{i % 10}/file-{i:05d}.txt": f"line {i}\n".encode() * (1 + i % 20)
        for i in range(n_files)
    }
    provider = LocalGitProvider(root)
    provider.create_repository(
        repo_id,
        default_branch="main",
        files=files,
        message=f"{n_files} files",
        author=Author("Bench", "bench@example.org"),
    )
    return provider


def make_app(provider: LocalGitProvider) -> Starlette:
    """The minimal app: ``/git/{repo}.git/{path}`` to the bridge, no auth, read-only."""

    async def git_endpoint(request: Request) -> Response:
        return await git_http_response(
            request,
            repo_path=provider.repository_path(request.path_params["repo"]),
            path_info="/" + request.path_params["path"],
            remote_user="bench",
            allow_push=False,
        )

    route = Route("/git/{repo}.git/{path:path}", git_endpoint, methods=["GET", "POST"])
    return Starlette(routes=[route])


@contextlib.contextmanager
def serve_app(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread on a free loopback
    port; yield its base URL (``http://127.0.0.1:<port>``); stop on exit."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def client_environment() -> dict[str, str]:
    """The git client's environment: no user config, no proxies."""
    return {k: v for k, v in git_environment().items() if "proxy" not in k.lower()}


def time_clone(url: str) -> float:
    """Seconds one ``git clone`` of ``url`` into a fresh folder takes (checkout included)."""
    with tempfile.TemporaryDirectory(prefix="bench-clone-") as scratch:
        started = time.perf_counter()
        subprocess.run(
            ["git", "clone", "-q", "--", url, str(Path(scratch) / "clone")],
            env=client_environment(),
            check=True,
            timeout=600,
        )
        return time.perf_counter() - started


def compare(urls: dict[str, str], runs: int, warmup: int) -> dict[str, list[float]]:
    """Clone each URL ``warmup`` times untimed, then ``runs`` times, interleaved."""
    for _ in range(warmup):
        for url in urls.values():
            time_clone(url)
    timings: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(runs):
        for name, url in urls.items():
            timings[name].append(time_clone(url))
    return timings


def report(timings: dict[str, list[float]], n_files: int) -> dict[str, object]:
    """Print a human summary and return the JSON-able result."""
    http, file = statistics.median(timings["http"]), statistics.median(timings["file"])
    ratio = http / file
    for name, values in timings.items():
        print(
            f"{name:>5}: median {statistics.median(values):.3f}s  "
            f"min {min(values):.3f}s  max {max(values):.3f}s  (n={len(values)})"
        )
    verdict = "ok" if ratio <= TARGET_RATIO else "over target"
    print(f"ratio http/file: {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")
    git_version = subprocess.run(
        ["git", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        "bench": "git_clone",
        "files": n_files,
        "runs": len(timings["http"]),
        "http_median_s": round(http, 4),
        "file_median_s": round(file, 4),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "git": git_version,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="files in the repository")
    parser.add_argument("--runs", type=int, default=9, help="timed clones per transport")
    parser.add_argument("--warmup", type=int, default=1, help="untimed clones per transport")
    parser.add_argument(
        "--bridge-only",
        action="store_true",
        help="serve the repository through the bare git bridge instead of the whole "
        "authenticated Balsam app (SeaweedFS, database, token check, audit)",
    )
    parser.add_argument(
        "--http-url",
        help="clone this URL instead of serving the built repository (file:// still local)",
    )
    return parser.parse_args(argv)


def full_app_urls(stack: contextlib.ExitStack, n_files: int) -> dict[str, str]:
    """Create a project through the real app, commit ``n_files`` files to it, and
    return its authenticated clone URL and the file:// URL of the same bare repository."""
    import httpx
    from _platform import platform

    p = stack.enter_context(platform())
    r = httpx.post(
        f"{p.url}/api/v1/projects",
        headers=p.headers,
        timeout=60,
        json={"name": "Clone bench", "branchName": "main"},
    )
    r.raise_for_status()
    pid = r.json()["id"]
    git = p.ctx.providers.git
    files = {
        f"folder-{i % 10}/file-{i:05d}.txt": f"line {i}\n".encode() * (1 + i % 20)
        for i in range(n_files)
    }
    git.commit_files(
        pid, "main", files, message=f"{n_files} files", author=Author("Bench", "bench@example.org")
    )
    http = p.url.replace("http://", f"http://bench:{p.token}@") + f"/git/{pid}.git"
    return {"http": http, "file": git.repository_path(pid).as_uri()}  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-git-"))
    try:
        with contextlib.ExitStack() as stack:
            started = time.perf_counter()
            if args.bridge_only or args.http_url:
                provider = make_repo(root, args.files)
                urls = {
                    "http": args.http_url
                    or (stack.enter_context(serve_app(make_app(provider))) + f"/git/{REPO_ID}.git"),
                    "file": provider.repository_path(REPO_ID).as_uri(),
                }
            else:
                urls = full_app_urls(stack, args.files)
            print(
                f"built {args.files}-file repository in {time.perf_counter() - started:.2f}s"
                f" ({'bridge only' if args.bridge_only else 'whole app, token auth'})"
            )
            timings = compare(urls, args.runs, args.warmup)
        print(
            json.dumps(
                {**report(timings, args.files), "mode": "bridge" if args.bridge_only else "app"}
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
