"""Render one workspace as Kubernetes objects (pure functions, no cluster needed).

A workspace becomes, in its project's namespace: a Secret (the only object that
holds credentials), a PVC (the home), a Pod (JupyterLab, plus an init container
that clones the repository on first start), a ClusterIP Service and a
NetworkPolicy. Every name is a DNS-1123 label of at most 63 characters and every
label value is valid; anything that is not (long ids, Unicode usernames) is
sanitised *and* suffixed with a hash of the original, so two different inputs
never share a name. Display names are never used. See ``docs/kubernetes.md``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from balsam.providers.workspaces.base import EnvironmentSpec, WorkspaceSpec, WorkspaceStartError

MANAGED_BY = {"app.kubernetes.io/managed-by": "balsam"}
WORKSPACE_LABEL = "balsam.io/workspace"
PROJECT_LABEL = "balsam.io/project"
OWNER_LABEL = "balsam.io/owner"
#: Annotations keep what labels cannot hold verbatim (the raw workspace id).
WORKSPACE_ID_ANNOTATION = "balsam.io/workspace-id"
BASE_URL_ANNOTATION = "balsam.io/base-url"
SERVER_CONTAINER = "jupyterlab"
CREDENTIALS_DIR = "/etc/balsam/git"
CREDENTIALS_FILE = f"{CREDENTIALS_DIR}/credentials"
#: Keys of the workspace Secret.
TOKEN_KEY, ACCESS_KEY, SECRET_KEY, GIT_KEY = (
    "jupyter-token",
    "s3-access-key",
    "s3-secret-key",
    "git-credentials",
)
#: Environment variables filled from the Secret, never written as literals.
SECRET_ENV = {
    "JUPYTER_TOKEN": TOKEN_KEY,
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "JUPYTERLAB_S3_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "JUPYTERLAB_S3_SECRET_ACCESS_KEY": SECRET_KEY,
}
#: The credential file is a read-only Secret mount, so git must never try to
#: write it back (``store`` would, and fail on the lock): answer ``get`` only.
CREDENTIAL_HELPER = (
    f'!f() {{ test "$1" = get && git credential-store --file={CREDENTIALS_FILE} get; }}; f'
)
#: A constant script; every value reaches it as an environment variable.
CLONE_SCRIPT = """set -eu
if [ ! -d "$REPO_DIR/.git" ]; then
  git -c credential.helper="$GIT_HELPER" clone --branch "$BALSAM_BRANCH" -- "$CLONE_URL" "$REPO_DIR"
fi
git -C "$REPO_DIR" config credential.helper "$GIT_HELPER"
git -C "$REPO_DIR" config user.name "$GIT_USER_NAME"
git -C "$REPO_DIR" config user.email "$GIT_USER_EMAIL"
"""
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Also a Secret key (and never one of the Secret's own, which are lower-case).
_CONNECTION_ENV = re.compile(r"BALSAM_CONN_[A-Z0-9_]+")
_MAX = 63


@dataclass(frozen=True)
class KubernetesConfig:
    """Where and how workspaces run on the cluster (see ``docs/kubernetes.md``)."""

    #: template id or environment name (``<template>-<version>``) → image, or a
    #: pattern formatted with ``template_id``, ``version`` and ``name``.
    image_for: Mapping[str, str] | str
    namespace_prefix: str = "balsam-proj-"
    storage_class: str | None = None
    home_size: str = "10Gi"
    home_path: str = "/home/jovyan"
    server_port: int = 8888
    uid: int = 1000
    #: Namespace and pod labels of the control plane: the only ingress peer, and
    #: an egress peer (git over HTTP, and S3 when it runs beside the control plane).
    control_plane_namespace: str = "balsam"
    control_plane_labels: Mapping[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "balsam"}
    )
    control_plane_ports: tuple[int, ...] = (8080,)
    #: External S3 endpoint(s) as CIDRs, reachable on ``s3_ports``. Empty: no rule.
    s3_cidrs: tuple[str, ...] = ()
    s3_ports: tuple[int, ...] = (443,)
    dns_namespace: str = "kube-system"

    def __post_init__(self) -> None:
        if not _DNS_LABEL.fullmatch(self.namespace_prefix.rstrip("-") or "-"):
            raise ValueError(f"namespace_prefix {self.namespace_prefix!r} is not a DNS label")


@dataclass(frozen=True)
class WorkspaceObjects:
    """The objects of one workspace, in the order they are created."""

    namespace: Any
    secret: Any
    pvc: Any
    service: Any
    network_policy: Any
    pod: Any

    def all(self) -> list[Any]:
        return [self.namespace, self.secret, self.pvc, self.service, self.network_policy, self.pod]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def dns_label(text: str, max_len: int = _MAX) -> str:
    """``text`` as a DNS-1123 label of at most ``max_len`` characters.

    Valid input is returned unchanged; anything else is lower-cased, folded to
    ASCII, cut, and suffixed with a hash of the original so it stays unique.
    """
    if len(text) <= max_len and _DNS_LABEL.fullmatch(text):
        return text
    cleaned = re.sub(r"[^a-z0-9]+", "-", _ascii(text).lower()).strip("-")
    head = cleaned[: max_len - 11].strip("-")
    return f"{head}-{_digest(text)}" if head else _digest(text)


def label_value(text: str) -> str:
    """``text`` as a valid label value (≤ 63 characters); hashed when it is not one."""
    if len(text) <= _MAX and _LABEL_VALUE.fullmatch(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", _ascii(text))
    head = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned[: _MAX - 11])
    return f"{head}-{_digest(text)}" if head else _digest(text)


def namespace_name(project_id: str, config: KubernetesConfig) -> str:
    return dns_label(config.namespace_prefix + project_id)


def object_name(workspace_id: str) -> str:
    """Name of the workspace's Pod, Service and NetworkPolicy (``ws-<id>``).

    Leaves room for the ``-secret`` and ``-home`` suffixes of the other objects.
    """
    return dns_label(f"ws-{workspace_id}", _MAX - len("-secret"))


def secret_name(workspace_id: str) -> str:
    return f"{object_name(workspace_id)}-secret"


def pvc_name(workspace_id: str) -> str:
    return f"{object_name(workspace_id)}-home"


def workspace_selector(workspace_id: str) -> str:
    """Label selector matching every object of one workspace."""
    return f"app.kubernetes.io/managed-by=balsam,{WORKSPACE_LABEL}={label_value(workspace_id)}"


def image_for(environment: EnvironmentSpec, config: KubernetesConfig) -> str:
    """The image of a template version; raises WorkspaceStartError if none is configured."""
    if isinstance(config.image_for, str):
        return config.image_for.format(
            template_id=environment.template_id, version=environment.version, name=environment.name
        )
    image = config.image_for.get(environment.name) or config.image_for.get(environment.template_id)
    if not image:
        raise WorkspaceStartError(
            f"No image is configured for template {environment.template_id!r} on this cluster."
        )
    return image


def git_credential_line(spec: WorkspaceSpec) -> str:
    """The git credential-store line for the clone URL's host (no path, no user-info)."""
    url = urllib.parse.urlsplit(spec.clone_url)
    user = urllib.parse.quote(spec.secrets.git_username, safe="")
    token = urllib.parse.quote(spec.secrets.git_token, safe="")
    return f"{url.scheme}://{user}:{token}@{url.netloc.rpartition('@')[2]}\n"


def public_clone_url(clone_url: str) -> str:
    """The clone URL without any user-info, so no credential reaches the Pod spec."""
    url = urllib.parse.urlsplit(clone_url)
    return url._replace(netloc=url.netloc.rpartition("@")[2]).geturl()


def _check_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if not (0 < len(name) <= _MAX and _LABEL_VALUE.fullmatch(name)) or (
        prefix and not (len(prefix) <= 253 and _LABEL_PREFIX.fullmatch(prefix))
    ):
        raise ValueError(f"{key!r} is not a valid Kubernetes label key")


def labels_for(spec: WorkspaceSpec) -> dict[str, str]:
    """The workspace's labels: ``spec.labels`` (values sanitised) under Balsam's own."""
    for key in spec.labels:
        _check_label_key(key)
    extra = {key: label_value(value) for key, value in spec.labels.items()}
    return {
        **extra,
        **MANAGED_BY,
        WORKSPACE_LABEL: label_value(spec.workspace_id),
        PROJECT_LABEL: label_value(spec.project_id),
        OWNER_LABEL: label_value(spec.owner_username),
    }


def _meta(name: str, spec: WorkspaceSpec, config: KubernetesConfig, **annotations: str) -> Any:
    return k8s.V1ObjectMeta(
        name=name,
        namespace=namespace_name(spec.project_id, config),
        labels=labels_for(spec),
        annotations={WORKSPACE_ID_ANNOTATION: spec.workspace_id, **annotations},
    )


def render_namespace(spec: WorkspaceSpec, config: KubernetesConfig) -> Any:
    """The project namespace; Pod Security Admission enforces the ``restricted`` profile."""
    labels = {
        **MANAGED_BY,
        PROJECT_LABEL: label_value(spec.project_id),
        "pod-security.kubernetes.io/enforce": "restricted",
    }
    return k8s.V1Namespace(
        api_version="v1",
        kind="Namespace",
        metadata=k8s.V1ObjectMeta(name=namespace_name(spec.project_id, config), labels=labels),
    )


def render_secret(spec: WorkspaceSpec, config: KubernetesConfig) -> Any:
    """The one object that holds the workspace's credentials."""
    data = {
        TOKEN_KEY: spec.secrets.server_token,
        ACCESS_KEY: spec.secrets.s3_access_key,
        SECRET_KEY: spec.secrets.s3_secret_key,
        GIT_KEY: git_credential_line(spec),
        # The data connections' variables, each under its own name as the key.
        **spec.secrets.connection_env,
    }
    return k8s.V1Secret(
        api_version="v1",
        kind="Secret",
        type="Opaque",
        string_data=data,
        metadata=_meta(secret_name(spec.workspace_id), spec, config),
    )


def render_pvc(spec: WorkspaceSpec, config: KubernetesConfig) -> Any:
    resources = k8s.V1VolumeResourceRequirements(requests={"storage": config.home_size})
    return k8s.V1PersistentVolumeClaim(
        api_version="v1",
        kind="PersistentVolumeClaim",
        metadata=_meta(pvc_name(spec.workspace_id), spec, config),
        spec=k8s.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=resources,
            storage_class_name=config.storage_class,
        ),
    )


def render_service(spec: WorkspaceSpec, config: KubernetesConfig) -> Any:
    port = k8s.V1ServicePort(name="http", port=config.server_port, target_port=config.server_port)
    return k8s.V1Service(
        api_version="v1",
        kind="Service",
        metadata=_meta(
            object_name(spec.workspace_id), spec, config, **{BASE_URL_ANNOTATION: spec.base_url}
        ),
        spec=k8s.V1ServiceSpec(
            type="ClusterIP",
            ports=[port],
            selector={WORKSPACE_LABEL: label_value(spec.workspace_id)},
        ),
    )


def render_network_policy(spec: WorkspaceSpec, config: KubernetesConfig) -> Any:
    """Ingress from the control plane only; egress to DNS, the control plane and S3."""
    control_plane = k8s.V1NetworkPolicyPeer(
        namespace_selector=_namespace_selector(config.control_plane_namespace),
        pod_selector=k8s.V1LabelSelector(match_labels=dict(config.control_plane_labels)),
    )
    dns = k8s.V1NetworkPolicyPeer(namespace_selector=_namespace_selector(config.dns_namespace))
    egress = [
        k8s.V1NetworkPolicyEgressRule(to=[dns], ports=[_port(53, "UDP"), _port(53, "TCP")]),
        k8s.V1NetworkPolicyEgressRule(
            to=[control_plane], ports=[_port(port) for port in config.control_plane_ports]
        ),
    ]
    if config.s3_cidrs:
        egress.append(
            k8s.V1NetworkPolicyEgressRule(
                to=[
                    k8s.V1NetworkPolicyPeer(ip_block=k8s.V1IPBlock(cidr=cidr))
                    for cidr in config.s3_cidrs
                ],
                ports=[_port(port) for port in config.s3_ports],
            )
        )
    ingress = k8s.V1NetworkPolicyIngressRule(
        _from=[control_plane], ports=[_port(config.server_port)]
    )
    return k8s.V1NetworkPolicy(
        api_version="networking.k8s.io/v1",
        kind="NetworkPolicy",
        metadata=_meta(object_name(spec.workspace_id), spec, config),
        spec=k8s.V1NetworkPolicySpec(
            pod_selector=k8s.V1LabelSelector(
                match_labels={WORKSPACE_LABEL: label_value(spec.workspace_id)}
            ),
            policy_types=["Ingress", "Egress"],
            ingress=[ingress],
            egress=egress,
        ),
    )


def _namespace_selector(namespace: str) -> Any:
    # Every namespace carries this label (Kubernetes >= 1.21); it cannot be forged
    # by tenants the way a free-form namespace label could.
    return k8s.V1LabelSelector(match_labels={"kubernetes.io/metadata.name": namespace})


def _port(port: int, protocol: str = "TCP") -> Any:
    return k8s.V1NetworkPolicyPort(port=port, protocol=protocol)


def render_pod(spec: WorkspaceSpec, config: KubernetesConfig) -> Any:
    """JupyterLab plus a clone-on-first-start init container, hardened and limited."""
    _check_spec(spec)
    volumes = [
        k8s.V1Volume(
            name="home",
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                claim_name=pvc_name(spec.workspace_id)
            ),
        ),
        k8s.V1Volume(
            name="git-credentials",
            secret=k8s.V1SecretVolumeSource(
                secret_name=secret_name(spec.workspace_id),
                default_mode=0o400,
                items=[k8s.V1KeyToPath(key=GIT_KEY, path="credentials", mode=0o400)],
            ),
        ),
    ]
    return k8s.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=_meta(
            object_name(spec.workspace_id),
            spec,
            config,
            **{"balsam.io/environment": spec.environment.name},
        ),
        spec=k8s.V1PodSpec(
            init_containers=[_clone_container(spec, config)],
            containers=[_server_container(spec, config)],
            volumes=volumes,
            # OnFailure: a crash or OOM kill restarts the server; a deliberate
            # shutdown from the Lab UI (exit 0) leaves the workspace stopped.
            restart_policy="OnFailure",
            # The workspace never talks to the Kubernetes API, so it gets no token,
            # and no service-link variables leak other services' addresses.
            automount_service_account_token=False,
            enable_service_links=False,
            # fs_group makes the home and the 0400 credential file readable by uid.
            security_context=k8s.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=config.uid,
                run_as_group=config.uid,
                fs_group=config.uid,
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
            ),
        ),
    )


def _check_spec(spec: WorkspaceSpec) -> None:
    if not (spec.base_url.startswith("/") and spec.base_url.endswith("/")):
        raise ValueError(f"base_url must start and end with '/': {spec.base_url!r}")
    for name in spec.env:
        if not _ENV_NAME.fullmatch(name) or name in SECRET_ENV:
            raise ValueError(f"{name!r} cannot be a literal environment variable")
    for name in spec.secrets.connection_env:
        if not _CONNECTION_ENV.fullmatch(name) or name in spec.env:
            raise ValueError(f"{name!r} cannot be a connection's environment variable")


def _server_container(spec: WorkspaceSpec, config: KubernetesConfig) -> Any:
    env = [k8s.V1EnvVar(name=name, value=value) for name, value in spec.env.items()]
    env += [
        k8s.V1EnvVar(
            name=name,
            value_from=k8s.V1EnvVarSource(
                secret_key_ref=k8s.V1SecretKeySelector(name=secret_name(spec.workspace_id), key=key)
            ),
        )
        for name, key in [*SECRET_ENV.items(), *((n, n) for n in spec.secrets.connection_env)]
    ]
    env.append(k8s.V1EnvVar(name="HOME", value=config.home_path))
    # JupyterLab reads its token from JUPYTER_TOKEN, so it never appears in args.
    args = [
        "--no-browser",
        "--ServerApp.ip=0.0.0.0",
        f"--ServerApp.port={config.server_port}",
        f"--ServerApp.base_url={spec.base_url}",
        f"--ServerApp.root_dir={config.home_path}",
        # The file browser opens in the clone (REPO_DIR, made by the init container).
        f"--ContentsManager.preferred_dir={dns_label(spec.project_id)}",
        "--ServerApp.allow_remote_access=True",
        "--LabApp.news_url=None",  # as the local provider: no news, no prompt
    ]
    # api/status needs the token, which must not be written into the probe;
    # <base_url>api answers unauthenticated and does not count as activity.
    ready = k8s.V1Probe(
        http_get=k8s.V1HTTPGetAction(path=f"{spec.base_url}api", port=config.server_port),
        period_seconds=2,
        failure_threshold=3,
    )
    return k8s.V1Container(
        name=SERVER_CONTAINER,
        image=image_for(spec.environment, config),
        command=["jupyter", "lab"],
        args=args,
        env=env,
        working_dir=config.home_path,
        ports=[k8s.V1ContainerPort(name="http", container_port=config.server_port)],
        readiness_probe=ready,
        resources=_resources(spec),
        security_context=_hardened(config),
        volume_mounts=_mounts(config),
    )


def _clone_container(spec: WorkspaceSpec, config: KubernetesConfig) -> Any:
    values = {
        "CLONE_URL": public_clone_url(spec.clone_url),
        "BALSAM_BRANCH": spec.branch,
        "REPO_DIR": f"{config.home_path}/{dns_label(spec.project_id)}",
        "GIT_HELPER": CREDENTIAL_HELPER,
        "GIT_USER_NAME": spec.owner_name,
        "GIT_USER_EMAIL": spec.owner_email,
        "HOME": config.home_path,
        "GIT_TERMINAL_PROMPT": "0",
    }
    return k8s.V1Container(
        name="clone",
        image=image_for(spec.environment, config),
        command=["sh", "-c", CLONE_SCRIPT],
        env=[k8s.V1EnvVar(name=name, value=value) for name, value in values.items()],
        resources=_resources(spec),
        security_context=_hardened(config),
        volume_mounts=_mounts(config),
    )


def _mounts(config: KubernetesConfig) -> list[Any]:
    return [
        k8s.V1VolumeMount(name="home", mount_path=config.home_path),
        k8s.V1VolumeMount(name="git-credentials", mount_path=CREDENTIALS_DIR, read_only=True),
    ]


def _resources(spec: WorkspaceSpec) -> Any:
    # Requests equal limits: the scheduler never overcommits what a template promises.
    amounts = {
        "memory": f"{spec.limits.memory_mib}Mi",
        "cpu": f"{max(1, round(spec.limits.cpu * 1000))}m",
    }
    return k8s.V1ResourceRequirements(requests=dict(amounts), limits=dict(amounts))


def _hardened(config: KubernetesConfig) -> Any:
    return k8s.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=config.uid,
        allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def render_workspace(spec: WorkspaceSpec, config: KubernetesConfig) -> WorkspaceObjects:
    """Every object of one workspace. Raises ValueError for unusable specs."""
    return WorkspaceObjects(
        namespace=render_namespace(spec, config),
        secret=render_secret(spec, config),
        pvc=render_pvc(spec, config),
        service=render_service(spec, config),
        network_policy=render_network_policy(spec, config),
        pod=render_pod(spec, config),
    )


def to_dicts(objects: WorkspaceObjects) -> list[dict[str, Any]]:
    """The objects as the JSON the API server receives (camelCase, no None fields).

    The Secret's entry carries the credentials in clear text: never log it.
    """
    api = k8s.ApiClient()
    return [api.sanitize_for_serialization(obj) for obj in objects.all()]
