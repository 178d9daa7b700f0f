"""Workspace proxy overhead: one running workspace, the same URLs through Balsam's
proxy (``/workspaces/<id>/...`` with the user's Bearer token, and with a browser's
session cookie) and directly to
its JupyterLab over its unix socket (the server's own token), side by side; and,
informational, a second JupyterLab from the same environment on a loopback TCP
port as releases before unix sockets ran it (``direct-tcp``; ``--no-tcp`` skips it).

* small requests: 200 sequential ``GET api/status`` and 200 ``GET api/contents``
  each way, one keep-alive client per side; a few repetitions, interleaved;
  median and p95 latency per request.
* a 20 MB file download (``GET files/<name>``; the file is written into the
  workspace's home on disk as the workspace's user), a few repetitions,
  interleaved; median time and MB/s.

The requests come from a separate client process (as a browser's would): a client
thread in the server's own process would share its GIL and slow the proxy side.

Prints medians and ratios proxy/direct (target <= 1.5), then a JSON line.

    .venv/bin/python bench/bench_workspace_proxy.py [--requests 200] [--reps 3] [--downloads 7]
                                                    [--no-tcp]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from _platform import Platform, median, percentile, platform
from bench_workspace_start import stop_group, tcp_command

from balsam.domain.identity.service import IdentityService
from balsam.providers.workspaces.jupyter import free_port

SIZE = 20 * 1024 * 1024
FILE = "bench-20mb.bin"


def start_workspace(p: Platform, client: httpx.Client) -> str:
    r = client.post(
        "/api/v1/projects", json={"name": "Proxy bench", "description": "", "branchName": "main"}
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/workspaces",
        json={
            "name": "Proxy bench",
            "templateId": "python",
            "projectId": r.json()["id"],
            "branchId": "main",
        },
    )
    assert r.status_code == 201, r.text
    wid: str = r.json()["id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/workspaces/{wid}").json()
        if body["state"] == "running":
            return wid
        if body["state"] == "failed":
            raise RuntimeError(f"workspace failed: {body['stateReason']}")
        time.sleep(0.2)
    raise RuntimeError("workspace did not start")


def write_file(folder: Path, uid: int | None) -> None:
    """A 20 MB file in ``folder``, owned by ``uid`` (a workspace's user)."""
    target = folder / FILE
    target.write_bytes(os.urandom(SIZE))
    target.chmod(0o600)
    if uid is not None:
        os.chown(target, uid, uid)


def workspace_uid(p: Platform, wid: str) -> int | None:
    uid_file: Path = p.ctx.providers.workspaces.root / wid / "uid"  # type: ignore[attr-defined]
    return int(uid_file.read_text()) if uid_file.exists() else None


@contextlib.contextmanager
def tcp_server(p: Platform, uid: int) -> Iterator[tuple[str, str]]:
    """JupyterLab from the workspace's environment on a loopback TCP port, as earlier
    releases ran it, serving a folder with the same file; yields (base URL, token)."""
    template = p.ctx.templates["python"]
    env_path = p.ctx.providers.workspaces.environments.ensure(  # type: ignore[attr-defined]
        template.environment, lambda _: None
    )
    as_root = os.geteuid() == 0
    home = Path(tempfile.mkdtemp(prefix="bench-proxy-tcp-"))
    home.chmod(0o711 if not as_root else 0o700)
    if as_root:
        os.chown(home, uid, uid)
    write_file(home, uid if as_root else None)
    token, port, base_url = secrets.token_urlsafe(32), free_port(), "/workspaces/tcp/"
    env = {
        "PATH": f"{env_path / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "JUPYTER_TOKEN": token,
    }
    log = (home.parent / f"{home.name}.log").open("wb")
    proc = subprocess.Popen(  # type: ignore[call-overload]
        tcp_command(env_path, base_url, port, home),
        env=env,
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **({"user": uid, "group": uid, "extra_groups": []} if as_root else {}),
    )
    url = f"http://127.0.0.1:{port}{base_url}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (
                    httpx.get(
                        url + "api/status", headers={"Authorization": f"token {token}"}
                    ).status_code
                    == 200
                ):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"TCP JupyterLab did not start; see {log.name}")
            time.sleep(0.1)
        yield url, token
    finally:
        stop_group(proc)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def small(client: httpx.Client, url: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - start)
        assert r.status_code == 200, (url, r.status_code, r.text[:200])
    return times


def download(client: httpx.Client, url: str) -> float:
    start = time.perf_counter()
    size = 0
    with client.stream("GET", url) as r:
        assert r.status_code == 200, (url, r.status_code)
        for chunk in r.iter_raw():
            size += len(chunk)
    elapsed = time.perf_counter() - start
    assert size == SIZE, size
    return elapsed


def measure(cfg: dict[str, object]) -> dict[str, object]:
    """The client process: every measurement, both sides; raw seconds back as JSON."""
    sides: dict[str, list[object]] = cfg["sides"]  # type: ignore[assignment]
    clients = {
        side: httpx.Client(  # type: ignore[call-overload]
            base_url=str(base),
            headers=dict(headers),
            timeout=60,  # type: ignore[call-overload]
            transport=httpx.HTTPTransport(uds=str(uds)) if uds else None,
        )
        for side, (base, headers, uds) in sides.items()
    }
    n, reps, downloads = int(cfg["requests"]), int(cfg["reps"]), int(cfg["downloads"])  # type: ignore[call-overload]
    lat: dict[str, dict[str, list[float]]] = {
        path: {side: [] for side in clients} for path in PATHS
    }
    dl: dict[str, list[float]] = {side: [] for side in clients}
    try:
        for client in clients.values():  # warm-up: connections, caches
            for path in PATHS:
                small(client, path, 20)
            download(client, f"files/{FILE}")
        for rep in range(reps):  # interleaved, alternating which side goes first
            order = list(clients) if rep % 2 == 0 else list(clients)[::-1]
            for path in PATHS:
                for side in order:
                    lat[path][side] += small(clients[side], path, n)
        for rep in range(downloads):
            for side in list(clients) if rep % 2 == 0 else list(clients)[::-1]:
                dl[side].append(download(clients[side], f"files/{FILE}"))
    finally:
        for client in clients.values():
            client.close()
    return {"latency": lat, "download": dl}


PATHS = ["api/status", "api/contents"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--downloads", type=int, default=7)
    parser.add_argument("--no-tcp", action="store_true", help="skip the direct-tcp side")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # the client process
    args = parser.parse_args()
    if args.client:
        print(json.dumps(measure(json.loads(args.client))))
        return

    with (
        platform(workspaces=True) as p,
        contextlib.ExitStack() as stack,
        httpx.Client(base_url=p.url, headers=p.headers, timeout=60) as api,
    ):
        wid = start_workspace(p, api)
        endpoint = p.ctx.providers.workspaces.endpoint(wid)
        assert endpoint is not None
        write_file(
            p.ctx.providers.workspaces.root / wid / "home",  # type: ignore[attr-defined]
            workspace_uid(p, wid),
        )
        identity = IdentityService(p.ctx)
        session, _ = identity.start_session(identity.get_user(p.actor.username))
        browser = {"Cookie": f"{p.ctx.settings.auth.cookie_name}={session}"}
        sides = {
            "proxy": [f"{p.url}/workspaces/{wid}/", p.headers, None],
            # A browser's way in: the session cookie instead of a bearer token.
            "proxy-cookie": [f"{p.url}/workspaces/{wid}/", browser, None],
            "direct": [endpoint.url, {"Authorization": f"token {endpoint.token}"}, endpoint.socket],
        }
        if not args.no_tcp:
            tcp_url, tcp_token = stack.enter_context(
                tcp_server(p, p.ctx.settings.workspaces.uid_base - 1)
            )
            sides["direct-tcp"] = [tcp_url, {"Authorization": f"token {tcp_token}"}, None]
        cfg = {
            "requests": args.requests,
            "reps": args.reps,
            "downloads": args.downloads,
            "sides": sides,
        }
        done = subprocess.run(
            [sys.executable, __file__, "--client", json.dumps(cfg)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"client failed:\n{done.stderr[-3000:]}")
        raw = json.loads(done.stdout.strip().splitlines()[-1])
    report(args, raw["latency"], raw["download"])


def report(
    args: argparse.Namespace, lat: dict[str, dict[str, list[float]]], dl: dict[str, list[float]]
) -> None:
    """Medians, p95 and ratios proxy/direct; direct-tcp alongside when measured."""
    tcp = "direct-tcp" in dl
    result: dict[str, object] = {
        "bench": "workspace_proxy",
        "requests": args.requests,
        "reps": args.reps,
        "downloads": args.downloads,
    }
    print(
        f"{'':26} {'proxy':>10} {'direct':>10} {'ratio':>7} {'cookie':>10}"
        + (f" {'tcp':>10}" if tcp else "")
        + "   (target <= 1.5; direct: unix socket)"
    )
    for path in PATHS:
        key = path.replace("/", "_")
        for stat, fn in (("median", median), ("p95", lambda v: percentile(v, 95))):
            pv, dv = fn(lat[path]["proxy"]), fn(lat[path]["direct"])
            cv = fn(lat[path]["proxy-cookie"])
            tv = fn(lat[path]["direct-tcp"]) if tcp else None
            print(
                f"GET {path:14} {stat:6} {pv * 1000:8.2f}ms {dv * 1000:8.2f}ms {pv / dv:7.2f}"
                f" {cv * 1000:8.2f}ms" + (f" {tv * 1000:8.2f}ms" if tv is not None else "")
            )
            result.update(
                {
                    f"{key}_proxy_{stat}_ms": round(pv * 1000, 2),
                    f"{key}_direct_{stat}_ms": round(dv * 1000, 2),
                    f"{key}_proxy_cookie_{stat}_ms": round(cv * 1000, 2),
                }
            )
            if tv is not None:
                result[f"{key}_direct_tcp_{stat}_ms"] = round(tv * 1000, 2)
        result[f"{key}_ratio"] = round(median(lat[path]["proxy"]) / median(lat[path]["direct"]), 2)
        result[f"{key}_cookie_ratio"] = round(
            median(lat[path]["proxy-cookie"]) / median(lat[path]["direct"]), 2
        )
    pm, dm = median(dl["proxy"]), median(dl["direct"])
    tm = median(dl["direct-tcp"]) if tcp else None
    mb = SIZE / 1e6
    print(
        f"GET files/20MB    median {pm * 1000:8.0f}ms {dm * 1000:8.0f}ms {pm / dm:7.2f}"
        + (f" {tm * 1000:8.0f}ms" if tm is not None else "")
        + f"   ({mb / pm:.0f} vs {mb / dm:.0f} MB/s)"
    )
    result.update(
        {
            "download_proxy_median_s": round(pm, 3),
            "download_direct_median_s": round(dm, 3),
            "download_proxy_mb_s": round(mb / pm, 1),
            "download_direct_mb_s": round(mb / dm, 1),
            "download_ratio": round(pm / dm, 2),
            "download_cookie_ratio": round(median(dl["proxy-cookie"]) / dm, 2),
            "download_proxy_s": [round(v, 3) for v in dl["proxy"]],
            "download_direct_s": [round(v, 3) for v in dl["direct"]],
            "target": "<= 1.5",
        }
    )
    if tm is not None:
        result["download_direct_tcp_median_s"] = round(tm, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
