"""The Kubernetes workspace provider, without a cluster.

Rendering is tested on the objects themselves (names, labels, limits, hardening,
and that no secret leaves the Secret). The provider class runs against
``FakeKube``, an in-memory stand-in for CoreV1Api/NetworkingV1Api that records
calls and injects faults: no cluster is available here (see docs/kubernetes.md).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from balsam.errors import ProviderError
from balsam.providers.workspaces.base import (
    EnvironmentSpec,
    ResourceLimits,
    WorkspaceSecrets,
    WorkspaceSpec,
    WorkspaceStartError,
)
from balsam.providers.workspaces.kubernetes import KubernetesWorkspaceProvider
from balsam.providers.workspaces.kubernetes_render import (
    CREDENTIAL_HELPER,
    CREDENTIALS_FILE,
    KubernetesConfig,
    git_credential_line,
    image_for,
    render_workspace,
    to_dicts,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
SECRET_NAMES = (
    "JUPYTER_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "JUPYTERLAB_S3_ACCESS_KEY_ID",
    "JUPYTERLAB_S3_SECRET_ACCESS_KEY",
)
CONFIG = KubernetesConfig(
    image_for="registry.example/balsam-workspace-{template_id}:{version}",
    s3_cidrs=("10.20.0.0/16",),
)


def make_spec(
    workspace_id: str = "w1a2b3",
    project_id: str = "survey-2024",
    owner: str = "alice",
    **changes: Any,
) -> WorkspaceSpec:
    secrets = WorkspaceSecrets(
        s3_access_key="AKIAXSECRETACCESS1",
        s3_secret_key="s3-SECRET-value/+=xyz",
        git_username=owner,
        git_token="gittoken-SECRET-42",
        server_token="srvtoken-SECRET-77",
    )
    spec = WorkspaceSpec(
        workspace_id=workspace_id,
        project_id=project_id,
        branch="main",
        owner_username=owner,
        owner_name='Ålice "O\'Hara"; rm -rf /',
        owner_email="alice@example.org",
        environment=EnvironmentSpec("python", ("jupyterlab==4.6.6", "pandas==2.2.3")),
        limits=ResourceLimits(memory_mib=2048, cpu=1.5),
        base_url=f"/workspaces/{workspace_id}/",
        clone_url=f"http://balsam.balsam.svc:8080/git/{project_id}.git",
        env={
            "BALSAM_PROJECT": project_id,
            "BALSAM_BRANCH": "main",
            "AWS_ENDPOINT_URL": "https://s3.example",
            "JUPYTERLAB_S3_ENDPOINT": "https://s3.example",
        },
        secrets=secrets,
    )
    return dataclasses.replace(spec, **changes)


HOSTILE = [
    make_spec(),
    make_spec(project_id="p" * 63),
    make_spec(workspace_id="WS_Upper.Case-" + "x" * 70, owner="Åsa.Öberg"),
    make_spec(owner="x" * 80, project_id="Årsstatistik för Åland"),
    make_spec(owner="-_.", workspace_id="..", labels={"example.com/team": "Ä" * 70}),
]


def secret_values(spec: WorkspaceSpec) -> list[str]:
    s = spec.secrets
    return [s.s3_access_key, s.s3_secret_key, s.git_token, s.server_token]


def containers(pod: Any) -> list[Any]:
    return [*pod.spec.init_containers, *pod.spec.containers]


@pytest.mark.parametrize("spec", HOSTILE)
def test_names_and_labels_are_valid_for_hostile_input(spec: WorkspaceSpec) -> None:
    for obj in render_workspace(spec, CONFIG).all():
        meta = obj.metadata
        for name in (meta.name, meta.namespace or meta.name):
            assert len(name) <= 63 and DNS_LABEL.match(name), name
        for key, value in meta.labels.items():
            _, _, name = key.rpartition("/")
            assert LABEL_NAME.match(name) and len(name) <= 63, key
            assert len(value) <= 63 and (value == "" or LABEL_NAME.match(value)), value
        assert spec.owner_name not in json.dumps(k8s.ApiClient().sanitize_for_serialization(meta))


def test_valid_ids_are_kept_verbatim() -> None:
    objects = render_workspace(make_spec(), CONFIG)
    assert objects.namespace.metadata.name == "balsam-proj-survey-2024"
    assert objects.pod.metadata.name == "ws-w1a2b3"
    assert objects.pod.metadata.labels["balsam.io/owner"] == "alice"


def test_unicode_usernames_are_sanitised_and_kept_apart() -> None:
    def owner_label(owner: str) -> str:
        labels = render_workspace(make_spec(owner=owner), CONFIG).pod.metadata.labels
        return str(labels["balsam.io/owner"])

    assert owner_label("Åsa.Öberg").startswith("Asa.Oberg-")
    assert owner_label("Åsa.Öberg") != owner_label("Äsa.Öberg")


def test_long_project_ids_give_distinct_namespaces() -> None:
    first, second = "a" * 62 + "1", "a" * 62 + "2"
    names = {
        render_workspace(make_spec(project_id=p), CONFIG).namespace.metadata.name
        for p in (first, second, "åsa", "äsa", "My_Project", "my-project")
    }
    assert len(names) == 6
    assert all(len(n) <= 63 for n in names)


def test_no_secret_leaves_the_secret() -> None:
    spec = make_spec()
    objects = render_workspace(spec, CONFIG)
    for obj in (
        objects.namespace,
        objects.pvc,
        objects.service,
        objects.network_policy,
        objects.pod,
    ):
        text = json.dumps(k8s.ApiClient().sanitize_for_serialization(obj))
        for value in secret_values(spec):
            assert value not in text, (type(obj).__name__, value)
    stored = objects.secret.string_data
    s = spec.secrets
    assert {s.s3_access_key, s.s3_secret_key, s.server_token} <= set(stored.values())
    assert stored["git-credentials"] == f"http://alice:{s.git_token}@balsam.balsam.svc:8080\n"


def test_secret_environment_comes_from_secret_key_refs() -> None:
    spec = make_spec()
    objects = render_workspace(spec, CONFIG)
    env = {e.name: e for e in objects.pod.spec.containers[0].env}
    expected = {
        "JUPYTER_TOKEN": spec.secrets.server_token,
        "AWS_ACCESS_KEY_ID": spec.secrets.s3_access_key,
        "JUPYTERLAB_S3_ACCESS_KEY_ID": spec.secrets.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": spec.secrets.s3_secret_key,
        "JUPYTERLAB_S3_SECRET_ACCESS_KEY": spec.secrets.s3_secret_key,
    }
    for name, value in expected.items():
        ref = env[name].value_from.secret_key_ref
        assert env[name].value is None
        assert ref.name == objects.secret.metadata.name
        assert objects.secret.string_data[ref.key] == value
    for name, value in spec.env.items():
        assert env[name].value == value
    for container in objects.pod.spec.init_containers:
        assert not {e.name for e in container.env} & set(SECRET_NAMES)


def test_secret_names_are_refused_as_literals() -> None:
    with pytest.raises(ValueError, match="AWS_SECRET_ACCESS_KEY"):
        render_workspace(make_spec(env={"AWS_SECRET_ACCESS_KEY": "oops"}), CONFIG)
    with pytest.raises(ValueError, match="label key"):
        render_workspace(make_spec(labels={"bad key!": "v"}), CONFIG)


def test_every_container_has_requests_and_limits() -> None:
    pod = render_workspace(make_spec(), CONFIG).pod
    assert len(containers(pod)) == 2
    for container in containers(pod):
        for amounts in (container.resources.requests, container.resources.limits):
            assert amounts == {"memory": "2048Mi", "cpu": "1500m"}


def test_pod_is_hardened() -> None:
    pod = render_workspace(make_spec(), dataclasses.replace(CONFIG, uid=4242)).pod
    ctx = pod.spec.security_context
    assert (ctx.run_as_non_root, ctx.run_as_user, ctx.fs_group) == (True, 4242, 4242)
    assert ctx.seccomp_profile.type == "RuntimeDefault"
    assert pod.spec.automount_service_account_token is False
    for container in containers(pod):
        sc = container.security_context
        assert sc.run_as_non_root and sc.run_as_user == 4242
        assert sc.allow_privilege_escalation is False
        assert sc.capabilities.drop == ["ALL"]
        assert sc.seccomp_profile.type == "RuntimeDefault"


def test_server_command_has_base_url_and_no_token() -> None:
    spec = make_spec(clone_url="http://bob:leaked-token@git.example:8080/git/p.git")
    pod = render_workspace(spec, CONFIG).pod
    server, clone = pod.spec.containers[0], pod.spec.init_containers[0]
    assert f"--ServerApp.base_url={spec.base_url}" in server.args
    assert f"--ContentsManager.preferred_dir={spec.project_id}" in server.args  # the clone
    assert "--LabApp.news_url=None" in server.args
    assert server.readiness_probe.http_get.path == f"{spec.base_url}api"
    assert server.image == f"registry.example/balsam-workspace-python:{spec.environment.version}"
    text = json.dumps(k8s.ApiClient().sanitize_for_serialization(pod))
    assert "leaked-token" not in text and "bob:" not in text
    clone_env = {e.name: e.value for e in clone.env}
    assert clone_env["CLONE_URL"] == "http://git.example:8080/git/p.git"
    assert CREDENTIALS_FILE in clone_env["GIT_HELPER"]
    mounts = {m.mount_path: m for m in clone.volume_mounts}
    assert mounts["/etc/balsam/git"].read_only
    volume = next(v for v in pod.spec.volumes if v.secret)
    assert volume.secret.items[0].mode == 0o400 and volume.secret.items[0].key == "git-credentials"


def test_credential_helper_answers_git_from_the_mounted_file(tmp_path: Path) -> None:
    spec = make_spec(
        owner="a@b",
        secrets=dataclasses.replace(make_spec().secrets, git_username="a@b", git_token="t/:%@k"),
    )
    store = tmp_path / "credentials"
    store.write_text(git_credential_line(spec))
    store.chmod(0o400)
    helper = CREDENTIAL_HELPER.replace(CREDENTIALS_FILE, str(store))
    request = "protocol=http\nhost=balsam.balsam.svc:8080\npath=git/survey-2024.git\n\n"
    out = subprocess.run(
        ["git", "-c", f"credential.helper={helper}", "credential", "fill"],
        input=request,
        capture_output=True,
        text=True,
        check=True,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert "username=a@b\n" in out and "password=t/:%@k\n" in out
    # Approving must not try to rewrite the read-only store.
    subprocess.run(
        ["git", "-c", f"credential.helper={helper}", "credential", "approve"],
        input=request.rstrip("\n") + "\nusername=x\npassword=y\n\n",
        text=True,
        check=True,
        capture_output=True,
    )
    assert store.read_text() == git_credential_line(spec)


def test_network_policy_admits_only_the_control_plane() -> None:
    objects = render_workspace(make_spec(), CONFIG)
    policy = objects.network_policy.spec
    assert policy.pod_selector.match_labels == objects.service.spec.selector
    assert sorted(policy.policy_types) == ["Egress", "Ingress"]
    [rule] = policy.ingress
    [peer] = rule._from
    assert peer.pod_selector.match_labels == {"app.kubernetes.io/name": "balsam"}
    assert peer.namespace_selector.match_labels == {"kubernetes.io/metadata.name": "balsam"}
    assert [(p.port, p.protocol) for p in rule.ports] == [(8888, "TCP")]
    for egress in policy.egress:
        assert egress.to and egress.ports  # an empty `to` or `ports` would allow everything
    cidrs = [peer.ip_block.cidr for e in policy.egress for peer in e.to if peer.ip_block]
    assert cidrs == ["10.20.0.0/16"]


def test_images_come_from_a_mapping_or_pattern() -> None:
    env = make_spec().environment
    by_name = KubernetesConfig(image_for={env.name: "reg/exact:1", "python": "reg/py:latest"})
    assert image_for(env, by_name) == "reg/exact:1"
    assert image_for(env, KubernetesConfig(image_for={"python": "reg/py:2"})) == "reg/py:2"
    with pytest.raises(WorkspaceStartError, match="python"):
        image_for(env, KubernetesConfig(image_for={"elyra": "reg/elyra:1"}))
    with pytest.raises(ValueError):
        KubernetesConfig(image_for="x", namespace_prefix="Bad_Prefix")


def test_to_dicts_gives_api_json() -> None:
    dicts = to_dicts(render_workspace(make_spec(), CONFIG))
    assert [(d["apiVersion"], d["kind"]) for d in dicts] == [
        ("v1", "Namespace"),
        ("v1", "Secret"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "Service"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("v1", "Pod"),
    ]
    pod = dicts[-1]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert "secretKeyRef" in json.dumps(pod)


# --- the provider against an in-memory API --------------------------------------------------


def ready() -> Any:
    return k8s.V1PodStatus(
        phase="Running", conditions=[k8s.V1PodCondition(type="Ready", status="True")]
    )


def pending() -> Any:
    return k8s.V1PodStatus(phase="Pending")


def container_status(
    waiting: str | None = None, terminated: str | None = None, last_terminated: str | None = None
) -> Any:
    def state(reason: str | None, done: bool) -> Any:
        if reason is None:
            return None
        if done:
            return k8s.V1ContainerState(
                terminated=k8s.V1ContainerStateTerminated(exit_code=137, reason=reason)
            )
        return k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason=reason))

    status = k8s.V1ContainerStatus(
        name="jupyterlab",
        image="img",
        image_id="",
        ready=False,
        restart_count=1,
        state=state(waiting, False) or state(terminated, True),
        last_state=state(last_terminated, True),
    )
    return k8s.V1PodStatus(phase="Running", container_statuses=[status])


class FakeKube:
    """CoreV1Api and NetworkingV1Api in memory: records calls, injects faults.

    ``faults[method]`` is raised (once) by the next call of that method; every
    created Pod gets ``kubelet()`` as its status.
    """

    def __init__(self) -> None:
        self.store: dict[tuple[str, str | None, str], Any] = {}
        self.calls: list[tuple[str, str | None, str]] = []
        self.faults: dict[str, Exception] = {}
        self.kubelet: Callable[[], Any] = ready

    def __getattr__(self, method: str) -> Callable[..., Any]:
        verb, _, resource = method.partition("_")
        if verb not in {"create", "replace", "read", "delete", "list"}:
            raise AttributeError(method)
        kind = resource.removeprefix("namespaced_").removesuffix("_for_all_namespaces")
        return lambda *args, **kwargs: self._handle(method, verb, kind, args, kwargs)

    def _handle(
        self, method: str, verb: str, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if verb == "create":
            ns, body = (None, args[0]) if kind == "namespace" else args
            key = (kind, ns, body.metadata.name)
        elif verb != "list":
            key = (kind, args[1], args[0])
        self.calls.append((method, *key[1:]) if verb != "list" else (method, None, ""))
        if method in self.faults:
            raise self.faults.pop(method)
        if verb == "list":
            return SimpleNamespace(
                items=[
                    obj
                    for (k, _, _), obj in self.store.items()
                    if k == kind and matches(obj, kwargs["label_selector"])
                ]
            )
        if verb == "create" and key in self.store:
            raise ApiException(status=409, reason="Conflict")
        if verb != "create" and key not in self.store:
            raise ApiException(status=404, reason="Not Found")
        if verb == "read":
            return self.store[key]
        if verb == "delete":
            return self.store.pop(key)
        self.store[key] = self._admit(kind, key[1], args[-1])
        return self.store[key]

    def _admit(self, kind: str, ns: str | None, body: Any) -> Any:
        """What the API server would store: namespace set, Secret data encoded, Pod status."""
        obj = copy.deepcopy(body)
        obj.metadata.namespace = ns
        if kind == "secret":
            obj.data = {
                k: base64.b64encode(v.encode()).decode() for k, v in obj.string_data.items()
            }
            obj.string_data = None
        if kind == "pod":
            obj.status = self.kubelet()
        return obj

    def created(self) -> list[str]:
        return [method for method, *_ in self.calls if method.startswith("create")]


def matches(obj: Any, selector: str) -> bool:
    labels = obj.metadata.labels or {}
    return all(labels.get(k) == v for k, v in (term.split("=") for term in selector.split(",")))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def provider(kube: FakeKube, clock: Clock | None = None) -> KubernetesWorkspaceProvider:
    clock = clock or Clock()
    return KubernetesWorkspaceProvider(
        CONFIG,
        core_api=kube,
        networking_api=kube,
        start_timeout=30,
        poll_interval=1,
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )


def test_start_creates_the_objects_in_order_and_returns_the_endpoint() -> None:
    kube, spec, said = FakeKube(), make_spec(), list[str]()
    endpoint = provider(kube).start(spec, said.append)
    assert kube.created() == [
        "create_namespace",
        "create_namespaced_secret",
        "create_namespaced_persistent_volume_claim",
        "create_namespaced_service",
        "create_namespaced_network_policy",
        "create_namespaced_pod",
    ]
    assert endpoint.url == "http://ws-w1a2b3.balsam-proj-survey-2024.svc:8888/workspaces/w1a2b3/"
    assert endpoint.token == spec.secrets.server_token
    assert said and not any(spec.secrets.server_token in line for line in said)


def test_start_after_stop_tolerates_existing_objects_and_refreshes_the_secret() -> None:
    kube, spec = FakeKube(), make_spec()
    workspaces = provider(kube)
    workspaces.start(spec, print)
    workspaces.stop(spec.workspace_id)
    fresh = dataclasses.replace(
        spec, secrets=dataclasses.replace(spec.secrets, server_token="new-token")
    )
    assert workspaces.start(fresh, print).token == "new-token"
    replaced = ("replace_namespaced_secret", "balsam-proj-survey-2024", "ws-w1a2b3-secret")
    assert replaced in kube.calls
    assert workspaces.endpoint(spec.workspace_id).token == "new-token"  # type: ignore[union-attr]


def test_start_of_a_running_workspace_keeps_its_pod_and_token() -> None:
    kube, spec = FakeKube(), make_spec()
    provider(kube).start(spec, print)
    again = dataclasses.replace(
        spec, secrets=dataclasses.replace(spec.secrets, server_token="other")
    )
    endpoint = provider(kube).start(again, print)
    assert endpoint.token == spec.secrets.server_token
    assert kube.created().count("create_namespaced_pod") == 1
    assert not any(m == "replace_namespaced_secret" for m, *_ in kube.calls)


def test_start_waits_for_readiness() -> None:
    kube, clock, spec = FakeKube(), Clock(), make_spec()
    kube.kubelet = pending
    key = ("pod", "balsam-proj-survey-2024", "ws-w1a2b3")

    def kubelet_catches_up(seconds: float) -> None:
        clock.now += seconds
        if clock.now >= 3:
            kube.store[key].status = ready()

    workspaces = provider(kube, clock)
    workspaces._sleep = kubelet_catches_up
    workspaces.start(spec, print)
    assert clock.now == 3


def test_start_reports_at_once_why_a_pod_cannot_run() -> None:
    kube, clock = FakeKube(), Clock()
    kube.kubelet = lambda: container_status(waiting="ImagePullBackOff")
    with pytest.raises(WorkspaceStartError, match="could not start: the server: ImagePullBackOff"):
        provider(kube, clock).start(make_spec(), print)
    assert clock.now == 0  # no point waiting for the timeout


def test_start_times_out_readably() -> None:
    kube, clock = FakeKube(), Clock()
    kube.kubelet = pending
    with pytest.raises(WorkspaceStartError, match="within 30 s"):
        provider(kube, clock).start(make_spec(), print)
    assert clock.now >= 30


def test_start_turns_api_errors_into_start_errors() -> None:
    kube = FakeKube()
    kube.faults["create_namespaced_secret"] = ApiException(status=403, reason="Forbidden")
    with pytest.raises(WorkspaceStartError, match="403 Forbidden") as caught:
        provider(kube).start(make_spec(), print)
    assert "secret" in caught.value.message
    assert "create_namespaced_pod" not in kube.created()


def test_stop_keeps_home_and_secret_and_is_idempotent() -> None:
    kube, spec = FakeKube(), make_spec()
    workspaces = provider(kube)
    workspaces.start(spec, print)
    workspaces.stop(spec.workspace_id)
    provider(kube).stop(spec.workspace_id)  # a restarted control plane, pod already gone
    kinds = {kind for kind, _, _ in kube.store}
    assert "pod" not in kinds
    assert {"secret", "persistent_volume_claim", "service"} <= kinds
    assert workspaces.probe(spec.workspace_id).alive is False


def test_delete_removes_everything_even_after_a_restart() -> None:
    kube, spec = FakeKube(), make_spec(workspace_id="WS_Upper.Case-" + "x" * 70)
    provider(kube).start(spec, print)
    other = make_spec(workspace_id="w2")
    provider(kube).start(other, print)
    provider(kube).delete(spec.workspace_id)
    provider(kube).delete(spec.workspace_id)
    left = {(kind, name) for kind, _, name in kube.store}
    assert left == {
        ("namespace", "balsam-proj-survey-2024"),
        ("pod", "ws-w2"),
        ("service", "ws-w2"),
        ("network_policy", "ws-w2"),
        ("secret", "ws-w2-secret"),
        ("persistent_volume_claim", "ws-w2-home"),
    }


def test_probe_names_the_memory_limit() -> None:
    kube, spec = FakeKube(), make_spec()
    workspaces = provider(kube)
    workspaces.start(spec, print)
    assert workspaces.probe(spec.workspace_id).alive is True
    key = ("pod", "balsam-proj-survey-2024", "ws-w1a2b3")
    kube.store[key].status = container_status(terminated="OOMKilled")
    assert workspaces.probe(spec.workspace_id).reason == "memory limit exceeded"
    kube.store[key].status = container_status(
        waiting="CrashLoopBackOff", last_terminated="OOMKilled"
    )
    assert workspaces.probe(spec.workspace_id).reason == "memory limit exceeded"
    kube.store[key].status = container_status(waiting="CrashLoopBackOff", last_terminated="Error")
    assert "CrashLoopBackOff" in (workspaces.probe(spec.workspace_id).reason or "")


def test_a_restarted_provider_finds_running_workspaces_and_endpoints() -> None:
    kube, spec = FakeKube(), make_spec(workspace_id="Mixed-Case_Id")
    provider(kube).start(spec, print)
    provider(kube).start(make_spec(workspace_id="w2"), print)
    kube.store[("pod", "balsam-proj-survey-2024", "ws-w2")].status = pending()
    restarted = provider(kube)
    assert restarted.running() == ["Mixed-Case_Id"]
    endpoint = provider(kube).endpoint("Mixed-Case_Id")
    assert endpoint is not None and endpoint.token == spec.secrets.server_token
    assert endpoint.url.endswith(":8888/workspaces/Mixed-Case_Id/")
    assert provider(kube).endpoint("w2") is None
    assert provider(kube).endpoint("unknown") is None


def test_unreachable_api_is_a_provider_error() -> None:
    kube = FakeKube()
    kube.faults["list_persistent_volume_claim_for_all_namespaces"] = MaxRetryError(
        pool=None, url="/api/v1/persistentvolumeclaims"
    )  # type: ignore[arg-type]
    with pytest.raises(ProviderError, match="could not be reached"):
        provider(kube).stop("w1")


def test_environment_lock_comes_from_a_config_map() -> None:
    kube, env = FakeKube(), make_spec().environment
    workspaces = provider(kube)
    assert workspaces.environment_lock(env) is None
    kube.store[("config_map", "balsam", f"balsam-env-{env.name}")] = k8s.V1ConfigMap(
        data={"pandas": "2.2.3"}
    )
    assert workspaces.environment_lock(env) == {"pandas": "2.2.3"}


def test_data_connections_reach_the_pod_through_its_secret_only() -> None:
    plain = make_spec()
    connections = {
        "BALSAM_CONN_PG_PASSWORD": "pg-SECRET-pw",
        "BALSAM_CONN_PG_DSN": "postgresql://u:pg-SECRET-pw@db:5432/d",
        "BALSAM_CONN_PG_HOST": "db",
    }
    spec = make_spec(secrets=dataclasses.replace(plain.secrets, connection_env=connections))
    objects = render_workspace(spec, CONFIG)
    env = {e.name: e for e in objects.pod.spec.containers[0].env}
    for name, value in connections.items():
        ref = env[name].value_from.secret_key_ref
        assert env[name].value is None and ref.name == objects.secret.metadata.name
        assert objects.secret.string_data[ref.key] == value
    pod = json.dumps(k8s.ApiClient().sanitize_for_serialization(objects.pod))
    assert "pg-SECRET-pw" not in pod
    for container in objects.pod.spec.init_containers:
        assert not {e.name for e in container.env} & set(connections)
    for bad in ("jupyter-token", "BALSAM_PROJECT", "BALSAM_CONN_pg"):
        hostile = dataclasses.replace(plain.secrets, connection_env={bad: "x"})
        with pytest.raises(ValueError, match="connection"):
            render_workspace(make_spec(secrets=hostile), CONFIG)
