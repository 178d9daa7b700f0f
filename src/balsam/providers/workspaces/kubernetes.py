"""Workspaces on Kubernetes: one Pod + Service + PVC per workspace, a namespace per project.

The objects come from :mod:`balsam.providers.workspaces.kubernetes_render`; this
module only talks to the API server. Notes on the contract:

* ``start`` creates what is missing (``409 AlreadyExists`` is fine), replaces the
  Secret and NetworkPolicy unless a live Pod already uses them, and polls the Pod
  until it is Ready. A finished or terminating Pod is removed and created again.
* ``stop`` deletes the Pod only; ``delete`` also removes the Service,
  NetworkPolicy, Secret and PVC (last, since it is how a workspace's namespace is
  found again after a restart). The project namespace stays: it belongs to the
  project, not to one workspace.
* ``activity`` is None: the control plane asks the server's ``api/status``
  through its proxy. ``environment_lock`` reads a ConfigMap the image build
  publishes (``balsam-env-<template>-<version>`` in the control-plane namespace).

Every API failure becomes a :class:`ProviderError` (``start``: a
:class:`WorkspaceStartError`) with a readable message. See ``docs/kubernetes.md``.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from balsam.errors import ProviderError
from balsam.providers.workspaces.base import (
    Endpoint,
    EnvironmentSpec,
    Probe,
    Progress,
    WorkspaceProvider,
    WorkspaceSpec,
    WorkspaceStartError,
)
from balsam.providers.workspaces.kubernetes_render import (
    BASE_URL_ANNOTATION,
    SERVER_CONTAINER,
    TOKEN_KEY,
    WORKSPACE_ID_ANNOTATION,
    KubernetesConfig,
    dns_label,
    object_name,
    pvc_name,
    render_workspace,
    secret_name,
    workspace_selector,
)

#: Waiting reasons that more waiting will not cure.
_HOPELESS = frozenset(
    {
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
    }
)
_STARTING = frozenset({None, "ContainerCreating", "PodInitializing"})
#: Model class → the snake-case resource name in the client's method names.
_RESOURCE = {
    "V1Secret": "secret",
    "V1PersistentVolumeClaim": "persistent_volume_claim",
    "V1Service": "service",
    "V1NetworkPolicy": "network_policy",
    "V1Pod": "pod",
}


def _call(
    operation: str,
    method: Callable[..., Any],
    *args: Any,
    tolerate: tuple[int, ...] = (),
    **kwargs: Any,
) -> Any:
    """Run one API call. Statuses in ``tolerate`` return None; other failures raise
    ProviderError naming ``operation``."""
    try:
        return method(*args, **kwargs)
    except ApiException as exc:
        if exc.status in tolerate:
            return None
        raise ProviderError(
            f"Kubernetes refused to {operation} ({exc.status} {exc.reason}).",
            details={"operation": operation, "status": exc.status},
        ) from exc
    except HTTPError as exc:
        raise ProviderError(
            f"Kubernetes could not be reached to {operation} ({type(exc).__name__}).",
            details={"operation": operation},
        ) from exc


def _load_api_client() -> Any:
    """An ApiClient from the in-cluster service account, else from the kubeconfig."""
    from kubernetes import config as kube_config

    try:
        configuration = k8s.Configuration()
        kube_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration)
    except kube_config.ConfigException:
        pass
    try:
        return kube_config.new_client_from_config()
    except (kube_config.ConfigException, OSError) as exc:
        raise ProviderError(
            "No Kubernetes configuration found (neither in-cluster nor a kubeconfig)."
        ) from exc


def is_ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _container_problem(status: Any) -> str | None:
    what = "cloning the repository" if status.name != SERVER_CONTAINER else "the server"
    now = status.state.terminated if status.state else None
    before = status.last_state.terminated if status.last_state else None
    if any(t is not None and t.reason == "OOMKilled" for t in (now, before)):
        return "memory limit exceeded" + ("" if what == "the server" else f" while {what}")
    if now is not None and (now.exit_code or status.name == SERVER_CONTAINER):
        return f"{what} exited with code {now.exit_code}" + (
            f" ({now.reason})" if now.reason else ""
        )
    waiting = status.state.waiting if status.state else None
    if waiting is not None and waiting.reason not in _STARTING:
        return f"{what}: {waiting.reason}" + (
            f" ({waiting.message[:200]})" if waiting.message else ""
        )
    return None


def describe_pod(pod: Any) -> Probe:
    """Whether a workspace Pod serves, and if not, why, in words its owner can read."""
    if is_ready(pod):
        return Probe(alive=True)
    status = pod.status
    for container in (
        [*(status.init_container_statuses or []), *(status.container_statuses or [])]
        if status
        else []
    ):
        problem = _container_problem(container)
        if problem:
            return Probe(alive=False, reason=problem)
    phase = (status.phase if status else None) or "Pending"
    detail = status.reason or status.message if status else None
    return Probe(alive=False, reason=f"{phase.lower()}" + (f" ({detail})" if detail else ""))


def _hopeless(pod: Any) -> bool:
    status = pod.status
    if status is None:
        return False
    if status.phase in ("Failed", "Succeeded"):
        return True
    containers = [*(status.init_container_statuses or []), *(status.container_statuses or [])]
    return any(
        c.state and c.state.waiting and c.state.waiting.reason in _HOPELESS for c in containers
    )


class KubernetesWorkspaceProvider(WorkspaceProvider):
    """Runs each workspace as a Pod on a Kubernetes cluster.

    ``api_client`` defaults to one built on first use from the in-cluster service
    account or the kubeconfig; ``core_api``/``networking_api`` replace the
    CoreV1Api/NetworkingV1Api built from it (tests inject faults through them).
    """

    def __init__(
        self,
        config: KubernetesConfig,
        api_client: Any = None,
        *,
        core_api: Any = None,
        networking_api: Any = None,
        start_timeout: float = 300.0,
        poll_interval: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._client = api_client
        self._owns_client = api_client is None
        self._core, self._networking = core_api, networking_api
        self._start_timeout, self._poll_interval = start_timeout, poll_interval
        self._sleep, self._clock = sleep, clock
        self._lock = threading.Lock()
        #: workspace id → namespace; rebuilt from the PVC labels after a restart.
        self._namespaces: dict[str, str] = {}

    @property
    def core(self) -> Any:
        with self._lock:
            if self._core is None:
                self._core = k8s.CoreV1Api(self._api_client())
            return self._core

    @property
    def networking(self) -> Any:
        with self._lock:
            if self._networking is None:
                self._networking = k8s.NetworkingV1Api(self._api_client())
            return self._networking

    def _api_client(self) -> Any:
        if self._client is None:
            self._client = _load_api_client()
        return self._client

    def start(self, spec: WorkspaceSpec, progress: Progress) -> Endpoint:
        try:
            return self._start(spec, progress)
        except ProviderError as exc:
            raise WorkspaceStartError(exc.message, details=exc.details) from exc

    def _start(self, spec: WorkspaceSpec, progress: Progress) -> Endpoint:
        deadline = self._clock() + self._start_timeout
        objects = render_workspace(spec, self.config)
        ns, name = objects.namespace.metadata.name, objects.pod.metadata.name
        self._namespaces[spec.workspace_id] = ns
        progress(f"Preparing Kubernetes namespace {ns}")
        _call(
            "create the project namespace",
            self.core.create_namespace,
            objects.namespace,
            tolerate=(409,),
        )
        pod = self._read_pod(ns, name)
        if pod is not None and (_hopeless(pod) or pod.metadata.deletion_timestamp):
            progress("Removing the workspace's previous pod")
            self._remove_pod(ns, name, deadline)
            pod = None
        # A live Pod keeps the credentials it started with; replacing the Secret
        # under it would hand the proxy a token the server does not know.
        self._apply(ns, objects.secret, replace=pod is None)
        self._apply(ns, objects.pvc)
        self._apply(ns, objects.service)
        self._apply(ns, objects.network_policy, replace=True)
        if pod is None:
            progress("Starting the workspace pod")
            self._apply(ns, objects.pod)
        self._wait_ready(ns, name, deadline, progress)
        token = spec.secrets.server_token if pod is None else self._token(ns, spec.workspace_id)
        port = objects.service.spec.ports[0].port
        return Endpoint(url=f"http://{name}.{ns}.svc:{port}{spec.base_url}", token=token)

    def _apply(self, ns: str, body: Any, *, replace: bool = False) -> None:
        resource = _RESOURCE[type(body).__name__]
        api = self.networking if resource == "network_policy" else self.core
        created = _call(
            f"create {resource.replace('_', ' ')} {body.metadata.name}",
            getattr(api, f"create_namespaced_{resource}"),
            ns,
            body,
            tolerate=(409,),
        )
        if created is None and replace:
            _call(
                f"replace {resource.replace('_', ' ')} {body.metadata.name}",
                getattr(api, f"replace_namespaced_{resource}"),
                body.metadata.name,
                ns,
                body,
            )

    def _read_pod(self, ns: str, name: str) -> Any:
        return _call(
            "read the workspace pod", self.core.read_namespaced_pod, name, ns, tolerate=(404,)
        )

    def _remove_pod(self, ns: str, name: str, deadline: float) -> None:
        _call(
            "delete the workspace pod", self.core.delete_namespaced_pod, name, ns, tolerate=(404,)
        )
        while self._read_pod(ns, name) is not None:
            if self._clock() >= deadline:
                raise WorkspaceStartError("The workspace's previous pod did not go away in time.")
            self._sleep(self._poll_interval)

    def _wait_ready(self, ns: str, name: str, deadline: float, progress: Progress) -> None:
        said: str | None = None
        while True:
            pod = self._read_pod(ns, name)
            if pod is None:
                raise WorkspaceStartError("The workspace pod disappeared while starting.")
            probe = describe_pod(pod)
            if probe.alive:
                return
            if _hopeless(pod):
                raise WorkspaceStartError(f"The workspace could not start: {probe.reason}.")
            if self._clock() >= deadline:
                raise WorkspaceStartError(
                    f"The workspace did not become ready within "
                    f"{self._start_timeout:.0f} s ({probe.reason})."
                )
            if probe.reason != said:
                progress(f"Waiting for the workspace pod: {probe.reason}")
                said = probe.reason
            self._sleep(self._poll_interval)

    def _token(self, ns: str, workspace_id: str) -> str:
        secret = _call(
            "read the workspace secret",
            self.core.read_namespaced_secret,
            secret_name(workspace_id),
            ns,
        )
        encoded = (secret.data or {}).get(TOKEN_KEY)
        if not encoded:
            raise ProviderError("The workspace secret holds no server token.")
        return base64.b64decode(encoded).decode()

    def _locate(self, workspace_id: str) -> str | None:
        """The workspace's namespace, found through its home PVC when not cached."""
        if workspace_id in self._namespaces:
            return self._namespaces[workspace_id]
        claims = _call(
            "find the workspace's home",
            self.core.list_persistent_volume_claim_for_all_namespaces,
            label_selector=workspace_selector(workspace_id),
        )
        for claim in claims.items:
            if (claim.metadata.annotations or {}).get(WORKSPACE_ID_ANNOTATION) == workspace_id:
                self._namespaces[workspace_id] = claim.metadata.namespace
                return str(claim.metadata.namespace)
        return None

    def stop(self, workspace_id: str) -> None:
        ns = self._locate(workspace_id)
        if ns is not None:
            _call(
                "delete the workspace pod",
                self.core.delete_namespaced_pod,
                object_name(workspace_id),
                ns,
                tolerate=(404,),
            )

    def delete(self, workspace_id: str) -> None:
        ns = self._locate(workspace_id)
        if ns is None:
            return
        name = object_name(workspace_id)
        for what, method, target in (
            ("pod", self.core.delete_namespaced_pod, name),
            ("service", self.core.delete_namespaced_service, name),
            ("network policy", self.networking.delete_namespaced_network_policy, name),
            ("secret", self.core.delete_namespaced_secret, secret_name(workspace_id)),
            ("home", self.core.delete_namespaced_persistent_volume_claim, pvc_name(workspace_id)),
        ):
            _call(f"delete the workspace {what}", method, target, ns, tolerate=(404,))
        self._namespaces.pop(workspace_id, None)

    def probe(self, workspace_id: str) -> Probe:
        ns = self._locate(workspace_id)
        pod = self._read_pod(ns, object_name(workspace_id)) if ns else None
        return describe_pod(pod) if pod is not None else Probe(alive=False, reason="not running")

    def endpoint(self, workspace_id: str) -> Endpoint | None:
        ns, name = self._locate(workspace_id), object_name(workspace_id)
        pod = self._read_pod(ns, name) if ns else None
        if ns is None or pod is None or not is_ready(pod):
            return None
        service = _call(
            "read the workspace service",
            self.core.read_namespaced_service,
            name,
            ns,
            tolerate=(404,),
        )
        if service is None:
            return None
        base_url = (service.metadata.annotations or {}).get(BASE_URL_ANNOTATION, "/")
        port = service.spec.ports[0].port
        return Endpoint(
            url=f"http://{name}.{ns}.svc:{port}{base_url}", token=self._token(ns, workspace_id)
        )

    def activity(self, workspace_id: str) -> datetime | None:
        return None

    def running(self) -> list[str]:
        pods = _call(
            "list workspace pods",
            self.core.list_pod_for_all_namespaces,
            label_selector="app.kubernetes.io/managed-by=balsam",
        )
        found = []
        for pod in pods.items:
            workspace_id = (pod.metadata.annotations or {}).get(WORKSPACE_ID_ANNOTATION)
            if workspace_id and is_ready(pod):
                self._namespaces[workspace_id] = pod.metadata.namespace
                found.append(str(workspace_id))
        return found

    def stop_unknown(self, known: set[str]) -> list[str]:
        """Nothing: a Pod is no child of Balsam's, so a dying Balsam leaves none
        behind by accident, and the Pods' labels name no Balsam instance: those of
        another instance sharing the cluster would look unknown and be stopped."""
        return []

    def environment_lock(self, spec: EnvironmentSpec) -> dict[str, str] | None:
        config_map = _call(
            "read the environment lock",
            self.core.read_namespaced_config_map,
            dns_label(f"balsam-env-{spec.name}"),
            self.config.control_plane_namespace,
            tolerate=(404,),
        )
        return dict(config_map.data) if config_map is not None and config_map.data else None

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
