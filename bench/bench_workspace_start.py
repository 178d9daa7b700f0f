"""Workspace start time: Balsam vs the same JupyterLab started directly vs JupyterHub.

Each round, side by side (the order rotates from round to round):

* **balsam**: ``POST /api/v1/workspaces`` (template 'python', its environment
  already built) until the first 200 of ``GET /workspaces/<id>/api/status``
  through Balsam's proxy with the user's Bearer token, polled every 50 ms; the
  workspace is deleted afterwards (not timed). This includes the S3 key, the
  clone of the project repository into the new home, the supervisor's own
  readiness check and the proxy.
* **direct**: the same ``jupyter lab`` command line
  (:func:`balsam.providers.workspaces.jupyter.server_command`: a unix socket in a
  private runtime folder, kernels on IPC) from the same environment, under a user
  id of its own like a workspace (when root), its ``api/status`` polled directly
  over the socket every 50 ms; then stopped.
* **direct-tcp** (informational): as direct, but the command line of earlier
  releases (``--ServerApp.ip=127.0.0.1 --port=N``, kernels on TCP), polled over
  TCP: what the unix socket costs or saves at start.
* **direct+pyc** (informational): as direct, with ``PYTHONPYCACHEPREFIX`` on a
  writable folder warmed by the first round. The template environment has no
  compiled bytecode and workspaces cannot write any into it, so the other
  columns import from source; this one shows what bytecode would save.
* **jupyterhub**: JupyterHub 6 with ``SimpleLocalProcessSpawner`` and
  configurable-http-proxy, named servers; from
  ``POST /hub/api/users/<u>/servers/<name>`` (a service's admin token) to the
  first 200 of ``/user/<u>/<name>/api/status`` through JupyterHub's proxy,
  polled every 50 ms; the server is stopped between rounds. Its environment
  (``.cache/bench-jupyterhub``: the template's requirements plus
  ``jupyterhub==6.*``, from /usr/bin/python3, byte-compiled as pip would) and
  configurable-http-proxy (npm) are installed on first use, outside Balsam's
  venv. ``--no-hub`` skips it.

Prints medians and the ratios balsam/direct (target <= 1.3) and
balsam/jupyterhub (target <= 1.0), then a JSON line.

    .venv/bin/python bench/bench_workspace_start.py [--rounds 5] [--no-hub] [--no-pyc] [--no-tcp]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from _platform import ROOT, Platform, median, platform

from balsam.providers.workspaces import runtime
from balsam.providers.workspaces.jupyter import free_port, server_command

POLL = 0.05
TIMEOUT = 180.0
HUB_DIR = ROOT / ".cache" / "bench-jupyterhub"
HUB_USER = "bench"


def poll_ok(
    client: httpx.Client,
    url: str,
    start: float,
    headers: dict[str, str] | None = None,
    alive: Callable[[], str | None] | None = None,
) -> float:
    """Seconds from ``start`` to the first 200 of ``url``; polled every 50 ms."""
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if client.get(url, headers=headers).status_code == 200:
                return time.perf_counter() - start
        now = time.perf_counter()
        if now - start > TIMEOUT:
            raise RuntimeError(f"{url} did not answer 200 within {TIMEOUT:.0f} s")
        problem = alive() if alive else None
        if problem:
            raise RuntimeError(problem)
        time.sleep(POLL)


# -- Balsam ----------------------------------------------------------------------------


def balsam_round(p: Platform, client: httpx.Client, project_id: str, i: int) -> float:
    start = time.perf_counter()
    r = client.post(
        "/api/v1/workspaces",
        json={
            "name": f"Bench {i}",
            "templateId": "python",
            "projectId": project_id,
            "branchId": "main",
        },
    )
    assert r.status_code == 201, r.text
    wid = r.json()["id"]

    def failed() -> str | None:
        body = client.get(f"/api/v1/workspaces/{wid}").json()
        return f"workspace failed: {body['stateReason']}" if body["state"] == "failed" else None

    try:
        return poll_ok(client, f"/workspaces/{wid}/api/status", start, alive=failed)
    finally:
        assert client.delete(f"/api/v1/workspaces/{wid}").status_code == 204


# -- JupyterLab started directly -------------------------------------------------------


class Direct:
    """``jupyter lab`` as a workspace runs it, without Balsam around it."""

    def __init__(
        self,
        env_path: Path,
        root: Path,
        uid: int,
        *,
        pycache: Path | None = None,
        tcp: bool = False,
    ) -> None:
        self.env_path, self.root, self.uid, self.pycache = env_path, root, uid, pycache
        self.tcp = tcp
        self.as_root = os.geteuid() == 0
        self.runtime_base = runtime.ensure_base(runtime.default_base())

    def _as_user(self) -> dict[str, object]:
        return {"user": self.uid, "group": self.uid, "extra_groups": []} if self.as_root else {}

    def round(self, client: httpx.Client, i: int) -> float:
        home = self.root / f"home-{i}-{secrets.token_hex(3)}"
        home.mkdir(mode=0o700)
        if self.as_root:
            os.chown(home, self.uid, self.uid)
        token = secrets.token_urlsafe(32)
        base_url = f"/workspaces/direct-{i}/"
        run_dir = runtime.folder_for(self.runtime_base, home)
        runtime.recreate(run_dir, self.uid if self.as_root else None)
        env = {
            "PATH": f"{self.env_path / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(self.env_path),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "SHELL": "/bin/bash",
            "JUPYTER_TOKEN": token,
            "JUPYTER_RUNTIME_DIR": str(run_dir),
        }
        if self.pycache is not None:
            env["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        if self.tcp:
            port = free_port()
            command = tcp_command(self.env_path, base_url, port, home)
            url, poller = f"http://127.0.0.1:{port}{base_url}api/status", client
        else:
            sock = run_dir / runtime.SERVER_SOCKET
            command = server_command(self.env_path, base_url, sock, home, start_in="")
            url = f"http://localhost{base_url}api/status"
            poller = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=30)
        log = (self.root / f"direct-{i}.log").open("wb")
        start = time.perf_counter()
        proc = subprocess.Popen(  # type: ignore[call-overload]
            command,
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self._as_user(),
        )
        try:
            return poll_ok(
                poller,
                url,
                start,
                headers={"Authorization": f"token {token}"},
                alive=lambda: (
                    None
                    if proc.poll() is None
                    else f"jupyter lab exited {proc.returncode}; see {log.name}"
                ),
            )
        finally:
            stop_group(proc)
            log.close()
            if poller is not client:
                poller.close()
            shutil.rmtree(home, ignore_errors=True)
            runtime.remove(run_dir)


def tcp_command(env_path: Path, base_url: str, port: int, root_dir: Path) -> list[str]:
    """The command line of releases before unix sockets: loopback TCP, kernels on TCP."""
    sock = Path("/nonexistent")
    command = server_command(env_path, base_url, sock, root_dir, start_in="")
    command.remove(f"--ServerApp.sock={sock}")
    command.remove("--ServerApp.sock_mode=0600")
    command.remove("--KernelManager.transport=ipc")
    return [
        *command,
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
    ]


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- JupyterHub -------------------------------------------------------------------------


def ensure_jupyterhub(requirements: list[str]) -> tuple[Path, Path]:
    """JupyterHub's venv and configurable-http-proxy under .cache/bench-jupyterhub
    (installed once); returns (venv, configurable-http-proxy)."""
    from uv import find_uv_bin

    venv, chp = HUB_DIR / "venv", HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    stamp = HUB_DIR / "installed.json"
    wanted = [*sorted(["jupyterhub==6.*", *requirements]), "compiled"]
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and chp.exists():
        return venv, chp
    HUB_DIR.mkdir(parents=True, exist_ok=True)
    uv = str(find_uv_bin())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    steps = [
        [uv, "venv", "--quiet", "--allow-existing", "--python", "/usr/bin/python3", str(venv)],
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *wanted[:-1]],
        # as pip would (uv compiles only what it installs, and not by default)
        [str(venv / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", str(venv / "lib")],
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "--prefix",
            str(HUB_DIR),
            "configurable-http-proxy",
        ],
    ]
    for step in steps:
        done = subprocess.run(
            step, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(step[:3])} failed: {done.stderr.strip()[-800:]}")
    stamp.write_text(json.dumps(wanted))
    return venv, chp


HUB_CONFIG = """
import json
cfg = json.loads({cfg!r})
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = cfg["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = cfg["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{{cfg['proxy_api_port']}}"
c.ConfigurableHTTPProxy.command = [cfg["chp"]]
c.JupyterHub.db_url = "sqlite:///" + cfg["dir"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = cfg["dir"] + "/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = cfg["dir"] + "/proxy.pid"
c.JupyterHub.pid_file = cfg["dir"] + "/hub.pid"
c.JupyterHub.log_level = "WARN"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{cfg["user"]}}
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = cfg["dir"] + "/home/{{username}}"
c.Spawner.cmd = [cfg["singleuser"]]
c.Spawner.args = cfg["args"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0
c.JupyterHub.cleanup_servers = True
c.JupyterHub.services = [{{"name": "bench", "api_token": cfg["token"]}}]
c.JupyterHub.load_roles = [{{"name": "bench-admin", "services": ["bench"],
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"]}}]
"""


@contextlib.contextmanager
def jupyterhub(venv: Path, chp: Path) -> Iterator[tuple[str, str]]:
    """A running JupyterHub with user ``bench``; yields (hub URL, admin service token)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-jupyterhub-"))
    (folder / "home" / HUB_USER).mkdir(parents=True)
    token = secrets.token_hex(32)
    cfg = {
        "port": free_port(),
        "hub_port": free_port(),
        "proxy_api_port": free_port(),
        "chp": str(chp),
        "dir": str(folder),
        "user": HUB_USER,
        "token": token,
        "singleuser": str(venv / "bin" / "jupyterhub-singleuser"),
        "args": ["--allow-root"] if os.geteuid() == 0 else [],
    }
    (folder / "jupyterhub_config.py").write_text(HUB_CONFIG.format(cfg=json.dumps(cfg)))
    env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(folder),
        "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
    }
    log = (folder / "hub.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "jupyterhub"), "-f", str(folder / "jupyterhub_config.py")],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{cfg['port']}"
    try:
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{url}/hub/api/").status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "JupyterHub did not start: "
                        + (folder / "hub.log").read_text(errors="replace")[-1500:]
                    )
                time.sleep(0.1)
            r = client.post(
                f"{url}/hub/api/users/{HUB_USER}", headers={"Authorization": f"token {token}"}
            )
            assert r.status_code in (201, 409), r.text
        yield url, token
    finally:
        stop_group(proc)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def hub_round(client: httpx.Client, hub: str, token: str, i: int) -> float:
    name = f"r{i}-{secrets.token_hex(2)}"
    headers = {"Authorization": f"token {token}"}
    api = f"{hub}/hub/api/users/{HUB_USER}/servers/{name}"
    start = time.perf_counter()
    r = client.post(api, headers=headers)
    assert r.status_code in (201, 202), r.text

    def failed() -> str | None:
        return None  # a failed spawn shows as a timeout; the hub's log says why

    try:
        return poll_ok(
            client, f"{hub}/user/{HUB_USER}/{name}/api/status", start, headers=headers, alive=failed
        )
    finally:
        r = client.delete(api, headers=headers, params={"remove": "true"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # 202: stopping; wait until it is gone
            user = client.get(f"{hub}/hub/api/users/{HUB_USER}", headers=headers).json()
            if name not in user.get("servers", {}):
                break
            time.sleep(0.1)


# -- main -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-hub", action="store_true", help="skip JupyterHub")
    parser.add_argument("--no-pyc", action="store_true", help="skip the direct+pyc column")
    parser.add_argument("--no-tcp", action="store_true", help="skip the direct-tcp column")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        p = stack.enter_context(platform(workspaces=True))
        template = p.ctx.templates["python"]
        t0 = time.perf_counter()
        env_path = p.ctx.providers.workspaces.environments.ensure(  # type: ignore[attr-defined]
            template.environment, lambda m: print(m, flush=True)
        )
        print(f"environment {env_path} ready ({time.perf_counter() - t0:.1f} s)", flush=True)
        client = stack.enter_context(httpx.Client(base_url=p.url, headers=p.headers, timeout=30))
        r = client.post(
            "/api/v1/projects",
            json={"name": "Workspace bench", "description": "", "branchName": "main"},
        )
        assert r.status_code == 201, r.text
        project_id = r.json()["id"]
        scratch = Path(tempfile.mkdtemp(prefix="bench-ws-direct-"))
        scratch.chmod(0o711)
        stack.callback(shutil.rmtree, scratch, True)
        pycache = scratch / "pycache"
        pycache.mkdir(mode=0o755)
        # Direct servers run (as root) under a user id like a workspace's: just below
        # this platform's block, so they can write neither the environment nor Balsam's data.
        direct_uid = p.ctx.settings.workspaces.uid_base - 1
        if os.geteuid() == 0:
            os.chown(pycache, direct_uid, direct_uid)
        direct = Direct(env_path, scratch, direct_uid)
        direct_pyc = Direct(env_path, scratch, direct_uid, pycache=pycache)
        raw = httpx.Client(timeout=30)
        stack.callback(raw.close)

        sides: dict[str, Callable[[int], float]] = {
            "balsam": lambda i: balsam_round(p, client, project_id, i),
            "direct": lambda i: direct.round(raw, i),
        }
        if not args.no_tcp:
            direct_tcp = Direct(env_path, scratch, direct_uid, tcp=True)
            sides["direct-tcp"] = lambda i: direct_tcp.round(raw, i)
        if not args.no_pyc:
            sides["direct+pyc"] = lambda i: direct_pyc.round(raw, i)
        hub_problem = None
        if not args.no_hub:
            try:
                venv, chp = ensure_jupyterhub(list(template.requirements))
                hub, hub_token = stack.enter_context(jupyterhub(venv, chp))
                sides["jupyterhub"] = lambda i: hub_round(raw, hub, hub_token, i)
            except Exception as exc:  # record (a)/(b) and say why
                hub_problem = f"{type(exc).__name__}: {exc}"
                print(f"JupyterHub skipped: {hub_problem}", file=sys.stderr)

        names = list(sides)
        for name in names:  # warm-up: page cache, the pycache prefix, hub's first spawn
            print(f"warm-up {name}: {sides[name](-1):.2f} s", flush=True)
        times: dict[str, list[float]] = {name: [] for name in names}
        for i in range(args.rounds):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                times[name].append(sides[name](i))
            print(
                f"round {i + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names),
                flush=True,
            )

    med = {name: median(values) for name, values in times.items()}
    result: dict[str, object] = {
        "bench": "workspace_start",
        "rounds": args.rounds,
        **{
            f"{n.replace('+', '_').replace('-', '_')}_median_s": round(v, 2) for n, v in med.items()
        },
        **{
            f"{n.replace('+', '_').replace('-', '_')}_s": [round(v, 2) for v in vs]
            for n, vs in times.items()
        },
        "ratio_balsam_direct": round(med["balsam"] / med["direct"], 2),
        "target_balsam_direct": "<= 1.3",
    }
    if "jupyterhub" in med:
        result["ratio_balsam_jupyterhub"] = round(med["balsam"] / med["jupyterhub"], 2)
        result["target_balsam_jupyterhub"] = "<= 1.0"
    else:
        result["jupyterhub"] = hub_problem or "skipped (--no-hub)"
    print()
    print(f"{'start (POST to api/status 200)':34} {'median':>8}   runs")
    for name in names:
        print(f"{name:34} {med[name]:7.2f}s   " + " ".join(f"{v:.2f}" for v in times[name]))
    print(f"balsam/direct     {result['ratio_balsam_direct']}  (target <= 1.3)")
    if "jupyterhub" in med:
        print(f"balsam/jupyterhub {result['ratio_balsam_jupyterhub']}  (target <= 1.0)")
    if "direct+pyc" in med:
        print(f"direct+pyc/direct {med['direct+pyc'] / med['direct']:.2f}  (bytecode cached)")
    if "direct-tcp" in med:
        print(f"direct/direct-tcp {med['direct'] / med['direct-tcp']:.2f}  (unix socket vs TCP)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
