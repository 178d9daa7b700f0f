"""R workspace start time: Balsam vs the same JupyterLab and R kernel started directly.

Timed, each round, from the first request to the output of a first R cell
(``cat(1+1)``, its ``stream`` "2" and the kernel back to idle), side by side (the
order rotates from round to round):

* **balsam**: ``POST /api/v1/workspaces`` (template 'r', its environment already
  built) until the first 200 of ``GET /workspaces/<id>/api/status`` through
  Balsam's proxy with the user's Bearer token, polled every 50 ms; then
  ``POST api/kernels {"name": "ir"}``, the kernel's WebSocket
  (``api/kernels/<id>/channels``) and an ``execute_request`` on it, all through the
  proxy. The workspace is deleted afterwards (not timed). This includes the S3 key,
  the clone of the project repository into the new home, the supervisor's own
  readiness check, the environment's lock and the proxy (HTTP and WebSocket).
* **direct**: the same ``jupyter lab`` command line
  (:func:`balsam.providers.workspaces.jupyter.server_command`: a unix socket in a
  private runtime folder, kernels on IPC) from the same environment, with the same
  kernel specs (Balsam's ``python3`` and IRkernel's ``ir``, written as a workspace's
  into a folder named by ``JUPYTER_PATH``), the same environment variables (``R_LIBS``,
  ``R_PROFILE``, ``RETICULATE_PYTHON``, the pip ones, ...) and memory limit, under a
  user id of its own like a workspace (when root); its ``api/status`` polled over the
  socket every 50 ms, then the same kernel start, WebSocket and cell over the socket;
  then stopped.

Each side's time is also split into phases (cumulative from the start): ``ready``
(api/status 200), ``kernel`` (api/kernels answered 201) and ``cell`` (the output back,
the total). Prints medians and the ratio balsam/direct (target <= 1.3), then a JSON
line.

    .venv/bin/python bench/bench_r_workspace_start.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from _platform import Platform, median, platform
from bench_workspace_start import TIMEOUT, poll_ok, stop_group
from websockets.sync.client import ClientConnection, connect, unix_connect

from balsam.providers.workspaces import r_environment, runtime, user_packages
from balsam.providers.workspaces.jupyter import (
    server_command,
    write_kernel_spec,
    write_lab_overrides,
)
from balsam.providers.workspaces.unix import kill_user

CODE = "cat(1+1)"
PHASES = ("ready", "kernel", "cell")

Connect = Callable[[str], ClientConnection]


def first_cell(
    client: httpx.Client,
    base: str,
    headers: dict[str, str] | None,
    ws_connect: Connect,
    start: float,
) -> tuple[float, float, str]:
    """Start an ``ir`` kernel under ``base`` and run :data:`CODE` on its WebSocket;
    returns (seconds to the kernel's 201, seconds to the output back, kernel id)."""
    created = client.post(f"{base}api/kernels", json={"name": "ir"}, headers=headers, timeout=120)
    assert created.status_code == 201, created.text
    kernel_id = created.json()["id"]
    t_kernel = time.perf_counter() - start
    msg_id, session = uuid.uuid4().hex, uuid.uuid4().hex
    socket = ws_connect(f"{base}api/kernels/{kernel_id}/channels")
    try:
        socket.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "bench",
                        "session": session,
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": {
                        "code": CODE,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        out: list[str] = []
        replied = idle = False
        deadline = time.monotonic() + TIMEOUT
        while not (replied and idle):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no reply to {CODE!r} within {TIMEOUT:.0f} s; got {out!r}")
            message = json.loads(socket.recv(timeout=left))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                raise RuntimeError(f"{CODE!r} failed: {content['ename']}: {content['evalue']}")
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        t_cell = time.perf_counter() - start
    finally:
        socket.close()
    assert "".join(out) == "2", out
    return t_kernel, t_cell, kernel_id


# -- Balsam ----------------------------------------------------------------------------


def balsam_round(p: Platform, client: httpx.Client, project_id: str, i: int) -> dict[str, float]:
    ws_root = p.url.replace("http://", "ws://", 1)

    def ws_connect(path: str) -> ClientConnection:
        return connect(
            ws_root + path,
            additional_headers=p.headers,
            open_timeout=60,
            max_size=None,
            legacy=True,
        )

    start = time.perf_counter()
    r = client.post(
        "/api/v1/workspaces",
        json={
            "name": f"R bench {i}",
            "templateId": "r",
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
        base = f"/workspaces/{wid}/"
        ready = poll_ok(client, f"{base}api/status", start, alive=failed)
        kernel, cell, _ = first_cell(client, base, None, ws_connect, start)
        return {"ready": ready, "kernel": kernel, "cell": cell}
    finally:
        assert client.delete(f"/api/v1/workspaces/{wid}").status_code == 204


# -- JupyterLab started directly -------------------------------------------------------


class Direct:
    """``jupyter lab`` as an R workspace runs it, without Balsam around it."""

    def __init__(self, p: Platform, env_path: Path, root: Path, uid: int) -> None:
        self.p, self.env_path, self.root, self.uid = p, env_path, root, uid
        self.as_root = os.geteuid() == 0
        self.runtime_base = runtime.ensure_base(runtime.default_base())
        self.environments = p.ctx.providers.workspaces.environments  # type: ignore[attr-defined]
        self.memory = p.ctx.templates["r"].limits.memory_mib * 1024 * 1024
        self.nproc: int | None = (
            p.ctx.providers.workspaces.max_processes  # type: ignore[attr-defined]
            if self.as_root
            else None
        )
        # The kernel specs a workspace gets (its <id>/jupyter folder), written once.
        self.jupyter = root / "jupyter"
        write_kernel_spec(env_path, self.jupyter)
        r_environment.write_kernel_spec(env_path, self.jupyter)
        assert (self.jupyter / "kernels" / r_environment.KERNEL / "kernel.json").is_file()

    def _environment(self, home: Path, run_dir: Path, token: str) -> dict[str, str]:
        """As LocalWorkspaceProvider._environment, with placeholders for the S3 key."""
        storage = self.p.ctx.providers.storage
        return {
            "PATH": f"{self.env_path / 'bin'}:{home / user_packages.PREFIX / 'bin'}:"
            "/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(self.env_path),
            "HOME": str(home),
            "USER": "bench",
            "LOGNAME": "bench",
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "JUPYTER_TOKEN": token,
            "AWS_ACCESS_KEY_ID": "direct",
            "AWS_SECRET_ACCESS_KEY": "direct",
            "JUPYTERLAB_S3_ACCESS_KEY_ID": "direct",
            "JUPYTERLAB_S3_SECRET_ACCESS_KEY": "direct",
            "AWS_ENDPOINT_URL": storage.endpoint_url,
            "AWS_DEFAULT_REGION": storage.region,
            "JUPYTERLAB_S3_ENDPOINT": storage.endpoint_url,
            "BALSAM_PROJECT": "direct",
            "BALSAM_BRANCH": "main",
            "BALSAM_BUCKET": "direct",
            "BALSAM_DATA_PREFIX": "main/",
            "BALSAM_WORKSPACE": "direct",
            "JUPYTER_RUNTIME_DIR": str(run_dir),
            "JUPYTER_PATH": str(self.jupyter),
            **r_environment.server_environment(self.env_path, home, self.environments.cran_url),
            **user_packages.server_environment(
                self.env_path, home, self.environments.pip_index_url
            ),
        }

    def round(self, i: int) -> dict[str, float]:
        home = self.root / f"home-{i}-{secrets.token_hex(3)}"
        home.mkdir(mode=0o700)
        (home / "project").mkdir()  # what start_in names: the clone, in a workspace
        if self.as_root:
            os.chown(home, self.uid, self.uid)
            os.chown(home / "project", self.uid, self.uid)
        token = secrets.token_urlsafe(32)
        headers = {"Authorization": f"token {token}"}
        base_url = f"/workspaces/direct-{i}/"
        run_dir = runtime.folder_for(self.runtime_base, home)
        runtime.recreate(run_dir, self.uid if self.as_root else None)
        sock = run_dir / runtime.SERVER_SOCKET
        command = server_command(self.env_path, base_url, sock, home, start_in="project")
        client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(sock)),
            base_url="http://localhost",
            timeout=30,
        )

        def ws_connect(path: str) -> ClientConnection:
            return unix_connect(
                str(sock),
                f"ws://localhost{path}",
                additional_headers=headers,
                open_timeout=60,
                max_size=None,
                legacy=True,
            )

        memory, nproc = self.memory, self.nproc

        def limit() -> None:  # as LocalWorkspaceProvider.start: in the child, as the uid
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            if nproc is not None:
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

        env = self._environment(home, run_dir, token)
        as_user = {"user": self.uid, "group": self.uid, "extra_groups": []} if self.as_root else {}
        log = (self.root / f"direct-{i}.log").open("wb")
        kernel_id = None
        start = time.perf_counter()
        proc = subprocess.Popen(  # type: ignore[call-overload]
            command,
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=limit,
            **as_user,
        )
        try:
            ready = poll_ok(
                client,
                f"{base_url}api/status",
                start,
                headers=headers,
                alive=lambda: (
                    None
                    if proc.poll() is None
                    else f"jupyter lab exited {proc.returncode}; see {log.name}"
                ),
            )
            kernel, cell, kernel_id = first_cell(client, base_url, headers, ws_connect, start)
            return {"ready": ready, "kernel": kernel, "cell": cell}
        finally:
            if kernel_id is not None:  # as a workspace's stop: the server ends its kernels
                with contextlib.suppress(httpx.HTTPError):
                    client.delete(f"{base_url}api/kernels/{kernel_id}", headers=headers)
            stop_group(proc)
            if self.as_root:
                kill_user(self.uid)  # anything left of the kernel
            log.close()
            client.close()
            shutil.rmtree(home, ignore_errors=True)
            runtime.remove(run_dir)


# -- main -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        p = stack.enter_context(platform(workspaces=True))
        template = p.ctx.templates["r"]
        t0 = time.perf_counter()
        env_path = p.ctx.providers.workspaces.environments.ensure(  # type: ignore[attr-defined]
            template.environment, lambda m: print(m, flush=True)
        )
        write_lab_overrides(env_path)  # as every workspace's start does
        print(f"environment {env_path} ready ({time.perf_counter() - t0:.1f} s)", flush=True)
        client = stack.enter_context(httpx.Client(base_url=p.url, headers=p.headers, timeout=30))
        r = client.post(
            "/api/v1/projects",
            json={"name": "R workspace bench", "description": "", "branchName": "main"},
        )
        assert r.status_code == 201, r.text
        project_id = r.json()["id"]
        scratch = Path(tempfile.mkdtemp(prefix="bench-rws-direct-"))
        scratch.chmod(0o711)
        stack.callback(shutil.rmtree, scratch, True)
        # Direct servers run (as root) under a user id like a workspace's: just below
        # this platform's block, so they can write neither the environment nor Balsam's data.
        direct = Direct(p, env_path, scratch, p.ctx.settings.workspaces.uid_base - 1)

        sides: dict[str, Callable[[int], dict[str, float]]] = {
            "balsam": lambda i: balsam_round(p, client, project_id, i),
            "direct": direct.round,
        }
        names = list(sides)
        for name in names:  # warm-up: page cache (R's packages, the environment)
            print(f"warm-up {name}: {sides[name](-1)['cell']:.2f} s", flush=True)
        times: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for i in range(args.rounds):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                times[name].append(sides[name](i))
            print(
                f"round {i + 1}: "
                + ", ".join(
                    f"{n} {times[n][-1]['cell']:.2f} s "
                    f"(ready {times[n][-1]['ready']:.2f}, kernel {times[n][-1]['kernel']:.2f})"
                    for n in names
                ),
                flush=True,
            )

    med = {n: {ph: median([t[ph] for t in ts]) for ph in PHASES} for n, ts in times.items()}
    result: dict[str, object] = {
        "bench": "r_workspace_start",
        "rounds": args.rounds,
        **{f"{n}_median_s": round(m["cell"], 2) for n, m in med.items()},
        **{f"{n}_s": [round(t["cell"], 2) for t in ts] for n, ts in times.items()},
        **{
            f"{n}_{ph}_median_s": round(m[ph], 2)
            for n, m in med.items()
            for ph in PHASES
            if ph != "cell"
        },
        "ratio_balsam_direct": round(med["balsam"]["cell"] / med["direct"]["cell"], 2),
        "target_balsam_direct": "<= 1.3",
    }
    print()
    print(f"{'R start (POST to first cell output)':36} {'median':>8}   runs")
    for name in names:
        print(
            f"{name:36} {med[name]['cell']:7.2f}s   "
            + " ".join(f"{t['cell']:.2f}" for t in times[name])
        )
    print(f"{'phase medians (cumulative)':36} " + "  ".join(f"{ph:>7}" for ph in PHASES))
    for name in names:
        print(f"{name:36} " + "  ".join(f"{med[name][ph]:6.2f}s" for ph in PHASES))
    print(f"balsam/direct {result['ratio_balsam_direct']}  (target <= 1.3)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
