"""Balsam's settings: one typed tree, read from ``BALSAM_*`` environment variables.

Every field has a default and a description; ``balsam settings`` prints them
and ``docs/settings.md`` is generated from them. Nested groups use ``__`` in
the variable name, e.g. ``BALSAM_STORAGE__S3_PORT``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class StorageSettings(BaseModel):
    """Object storage (S3)."""

    provider: Literal["seaweedfs", "s3-iam"] = Field(
        "seaweedfs",
        description=(
            "'seaweedfs' starts an embedded SeaweedFS server as a child process of "
            "`balsam up`; 's3-iam' uses an external S3 server that implements the "
            "AWS IAM user/key/policy API (SeaweedFS, AWS)."
        ),
    )
    endpoint_url: str | None = Field(
        None,
        description="S3 endpoint clients use. Default for 'seaweedfs': http://127.0.0.1:<s3_port>.",
    )
    region: str = Field("us-east-1", description="S3 region name given to clients.")
    admin_access_key: str | None = Field(
        None,
        description=(
            "Admin access key. For 'seaweedfs', generated on first start and kept "
            "in <data_dir>/storage/admin.json (mode 0600) when unset."
        ),
    )
    admin_secret_key: SecretStr | None = Field(
        None, description="Admin secret key (see admin_access_key)."
    )
    s3_port: int = Field(
        8333, ge=1, le=55535, description="Embedded SeaweedFS: S3 API port (gRPC twin: +10000)."
    )
    master_port: int = Field(
        9333, ge=1, le=55535, description="Embedded SeaweedFS: master port (gRPC twin: +10000)."
    )
    volume_port: int = Field(
        9340, ge=1, le=55535, description="Embedded SeaweedFS: volume port (gRPC twin: +10000)."
    )
    filer_port: int = Field(
        8888, ge=1, le=55535, description="Embedded SeaweedFS: filer port (gRPC twin: +10000)."
    )
    admin_port: int = Field(
        23646, ge=1, le=55535, description="Embedded SeaweedFS: admin port (gRPC twin: +10000)."
    )
    max_volumes: int = Field(
        10_000,
        ge=100,
        description="Embedded SeaweedFS: most volumes the volume server may hold. Each "
        "bucket (project) takes at least one; volumes are sparse files.",
    )
    memory_limit_mib: int = Field(
        1024, description="Embedded SeaweedFS: soft memory limit (GOMEMLIMIT) in MiB."
    )
    retention_days: int = Field(
        30,
        ge=0,
        description="Days deleted data is kept before it is destroyed: a deleted branch's "
        "objects, and objects users overwrite or delete, stay in the bucket as noncurrent "
        "versions, hidden from listings and workspaces, and are purged by an hourly sweep "
        "once this long has passed since their deletion. 0 purges at the next sweep.",
    )
    tmp_days: int = Field(
        7,
        ge=1,
        description="Days objects in a project's temporary area (tmp/ in its bucket) are "
        "kept by default; an upload may ask for fewer or more (?expiresInDays=), up to "
        "tmp_max_days. An hourly sweep deletes expired ones (recoverably, as any deletion).",
    )
    tmp_max_days: int = Field(
        30, ge=1, description="Most days an upload to tmp/ may ask to be kept."
    )
    quota_bytes: int | None = Field(
        None,
        ge=0,
        description="Bytes a project's bucket may hold (current objects) unless an admin "
        "sets the project's own quota (PATCH /api/v1/projects/{id} storageQuotaBytes). "
        "Unset: no quota. Writes through Balsam that would pass it are refused (507); "
        "past it through S3 (a workspace's key), the quota sweep turns the project's keys "
        "read-only until the bucket is under its quota again.",
    )
    quota_sweep_minutes: float = Field(
        5,
        gt=0,
        description="Minutes between two quota sweeps (each lists the buckets of projects "
        "with a quota).",
    )
    max_uploads: int = Field(
        24,
        ge=1,
        description="Upload bodies (PUT …/data/{path}, resumable uploads' parts) received "
        "at once, all users together; each holds up to a few parts in memory. More answer "
        "429 with Retry-After (the portal tries again).",
    )
    max_uploads_per_user: int = Field(
        6, ge=1, description="Upload bodies one user has received at once (as max_uploads)."
    )
    body_idle_seconds: float = Field(
        60,
        gt=0,
        description="Longest an upload's body may pause before the request is ended (408): "
        "a body that stops would hold its upload slot and buffered parts.",
    )
    upload_hours: int = Field(
        24,
        ge=1,
        description="Hours a resumable upload (POST /api/v1/projects/{id}/data/uploads) may "
        "stay unfinished; after that its parts are dropped by the hourly sweep.",
    )
    filer_grpc_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Embedded SeaweedFS: the filer gRPC port whose IAM service Balsam mints "
        "and revokes keys through (mutual TLS and an admin JWT). Default: filer_port + 10000, "
        "where `balsam up` runs it; set only for a weed started otherwise (tests, benchmarks).",
    )
    conf_dir: Path | None = Field(
        None,
        description="Embedded SeaweedFS: its config folder, holding the CA, Balsam's gRPC "
        "client certificate and the JWT keys. Default: <data_dir>/storage/conf, where "
        "`balsam up` makes them; set only for a weed started otherwise (tests, benchmarks).",
    )


class GitSettings(BaseModel):
    """Git hosting."""

    provider: Literal["local"] = Field(
        "local",
        description="'local' keeps bare repositories under <data_dir>/git and serves "
        "them over smart HTTP at /git/<project>.git.",
    )
    max_requests: int = Field(
        16,
        ge=1,
        description="Git requests served at once, all users together (each runs a git "
        "process of ~10 MB); more answer 503 with Retry-After.",
    )
    max_requests_per_user: int = Field(
        4,
        ge=1,
        description="Git requests one user (or one workspace's git token) has served at "
        "once; more answer 503 with Retry-After.",
    )
    body_idle_seconds: float = Field(
        60,
        gt=0,
        description="Longest a git request's body may pause before the request is "
        "dropped (a client that sends a header and then nothing holds a git process).",
    )


class ImportSettings(BaseModel):
    """Imports of files from http(s) URLs into project buckets."""

    max_bytes: int = Field(
        10 * 1024**3,
        ge=1,
        description="Largest file an import may bring in (bytes); a larger one fails and "
        "leaves nothing in the bucket.",
    )
    connect_timeout_seconds: float = Field(
        10, gt=0, description="Longest an import waits for a connection to the source."
    )
    read_timeout_seconds: float = Field(
        60, gt=0, description="Longest an import waits for the source's next bytes."
    )
    total_seconds: float = Field(
        3600, gt=0, description="Longest one import may take from its first request to the end."
    )
    max_redirects: int = Field(
        5,
        ge=0,
        le=20,
        description="Redirects an import follows; each new address is checked as the first "
        "(source_private_hosts).",
    )
    workers: int = Field(2, ge=1, le=16, description="Imports run at once by each Balsam process.")


class RunSettings(BaseModel):
    """Recorded runs of pipelines, notebooks and scripts (``/api/v1/projects/{id}/runs``)."""

    workers: int = Field(
        2, ge=1, le=16, description="Runs run at once by each Balsam process (more wait queued)."
    )
    node_concurrency: int = Field(
        0,
        ge=0,
        le=64,
        description="Nodes of one run that run side by side at most; 0: the machine's cores.",
    )
    default_template: str = Field(
        "elyra",
        description="The workspace template whose environment a run uses when it names none "
        "(its locked packages, Python and R).",
    )
    max_parameters_bytes: int = Field(
        65536, ge=2, description="Largest parameters object a run may have (canonical JSON)."
    )
    max_seconds: int = Field(
        86400,
        ge=10,
        description="Longest one run may take; a run still going then is stopped and fails.",
    )
    openlineage_url: str | None = Field(
        None,
        description="Where each run's OpenLineage events are also sent (POST, one event "
        "per request, as OpenLineage's HTTP transport does: e.g. Marquez's "
        "http://marquez:5000/api/v1/lineage). Unset: they are only kept with the run.",
    )


def _origin(value: str) -> str:
    """``value`` as a browser's ``Origin`` header writes it; ValueError for anything
    that is not one origin (a wildcard, ``null``, a path, credentials, a query)."""
    parts = urlsplit(value.strip().rstrip("/"))
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "*" in value
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
        or port == -1
    ):
        raise ValueError(
            f"cors_origins: {value!r} is not an origin (scheme://host[:port], no wildcard, no path)"
        )
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def url_host(url: str | None) -> str:
    """The host name of ``url`` as one compares it: lower case, no trailing dot
    ("Example.org." and "example.org" are one host); "" for none."""
    return (urlsplit(url or "").hostname or "").lower().rstrip(".")


def _another_https_host(url: str | None, other: str | None) -> bool:
    """Whether ``url`` is https and its host name is not ``other``'s."""
    return (url or "").startswith("https://") and url_host(url) != url_host(other)


class AuthSettings(BaseModel):
    """Login, sessions and tokens."""

    session_cookie: str = Field(
        "balsam_session",
        description="Name of the session cookie (prefixed __Host- when cookie_secure, so "
        "no other host name, a subdomain neither, can set it). The workspaces' host has "
        "its own cookie, this name with _workspace appended.",
    )
    session_ttl_hours: int = Field(12, ge=1, description="Lifetime of a login session.")
    cookie_secure: bool = Field(
        False, description="Mark the session cookie Secure (set true behind HTTPS)."
    )

    @property
    def cookie_name(self) -> str:
        """The portal's session cookie as browsers hold it."""
        return f"__Host-{self.session_cookie}" if self.cookie_secure else self.session_cookie

    @property
    def workspace_cookie_name(self) -> str:
        """The workspaces' host's session cookie (handed over from the portal's)."""
        return f"{self.cookie_name}_workspace"

    @property
    def sign_in_cookie_name(self) -> str:
        """The cookie of sign-ins with the identity provider under way."""
        return f"{self.cookie_name}_oidc"

    token_max_days: int = Field(365, ge=1, description="Longest allowed API token lifetime.")
    password_min_length: int = Field(12, ge=8, description="Minimum password length.")
    login_max_failures: int = Field(
        5,
        ge=1,
        description="Failed logins allowed per account from one address in the window "
        "(a local process of another user, e.g. a workspace, counts as address uid:<n>).",
    )
    login_max_failures_per_address: int | None = Field(
        None,
        ge=1,
        description="Failed logins allowed from one address, for any accounts, in "
        "the window. Default: login_max_failures.",
    )
    login_window_seconds: int = Field(
        300, ge=1, description="Window for counting failed logins (rate limit)."
    )


#: Prefix of the groups Balsam names for its projects (``authGroup``); never an admin group.
PROJECT_GROUP_PREFIX = "balsam-grp_"
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class ProjectRoleRule(BaseModel):
    """A group of the identity provider whose members have a role in a project."""

    group: str = Field(min_length=1, max_length=255)
    project: str = Field(min_length=1, max_length=63, description="The project's id.")
    role: Literal["member", "owner"] = "member"

    @field_validator("group")
    @classmethod
    def _not_a_project_group(cls, group: str) -> str:
        if group.startswith(PROJECT_GROUP_PREFIX):
            raise ValueError(f"oidc.project_roles: {group!r} is a project's group")
        return group


class OidcSettings(BaseModel):
    """Sign-in with the organisation's identity provider (OpenID Connect; off without issuer)."""

    issuer: str | None = Field(
        None,
        description="The identity provider's issuer URL, exactly as its tokens name it "
        "(discovery at <issuer>/.well-known/openid-configuration), e.g. "
        "https://login.example.org/realms/balsam. https, except on this machine's loopback "
        "(tests). Unset: OpenID Connect is off.",
    )
    client_id: str = Field(
        "",
        description="Balsam's client id at the provider (authorization code flow with PKCE; "
        "redirect URI <public_url>/login/oidc/callback, post-logout redirect URI "
        "<public_url>/logged-out).",
    )
    client_secret: SecretStr | None = Field(
        None,
        description="The client's secret (client_secret_basic); unset for a public client.",
    )
    audiences: list[str] = Field(
        default_factory=list,
        description="Accepted 'aud' values of the provider's access tokens sent to the API as "
        "bearer tokens (e.g. '[\"balsam-api\"]'). Empty: the API accepts no provider "
        "tokens (sign-in to the portal still works).",
    )
    authorized_parties: list[str] = Field(
        default_factory=list,
        description="When set, the clients (a token's 'azp', or 'client_id') whose access "
        "tokens the API accepts, e.g. upstream's UI's client id. Empty: any client of the "
        "provider whose tokens carry an accepted audience.",
    )
    admin_groups: list[str] = Field(
        default_factory=list,
        description="Groups (in the 'groups' claim) whose members are Balsam administrators. "
        "Applied at every sign-in, and whenever an access token carries the claim: "
        "membership grants admin rights, its absence takes them away. Empty: admin rights "
        "of provider accounts are managed in Balsam. A project's group (balsam-grp_…) never "
        "counts.",
    )
    project_roles: list[ProjectRoleRule] = Field(
        default_factory=list,
        description="Rules that give members of a provider's group a role in a project, "
        'e.g. \'[{"group": "team-lfs", "project": "<project id>", "role": '
        '"member"}]\'. Applied at every sign-in, and at most once a minute on API calls '
        "whose token carries the groups claim: a member of the group becomes a member (or "
        "owner) of the project; leaving the group ends a membership a rule made (keys "
        "revoked, workspaces locked, as when an owner removes someone). Memberships people "
        "made are never changed. A project's group (balsam-grp_…) cannot be a rule's group.",
    )
    groups_claim: str = Field("groups", description="The claim that lists a user's groups.")
    username_claim: str = Field(
        "preferred_username",
        description="The claim Balsam's user name is made from at first sign-in.",
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        description="Scopes asked for at sign-in ('openid' always). Add the provider's scope "
        "for the groups claim if it has one.",
    )
    groups_clients: list[str] = Field(
        default_factory=list,
        description="Client ids of the provider's service accounts that may read any user's "
        "project groups (GET /api/v1/users/{username}/groups) with a client-credentials "
        "token, for the provider to put Balsam's project groups into its tokens.",
    )
    password_login: bool = Field(
        True,
        description="Whether local accounts may sign in with a password (portal, API basic "
        "authentication, git). False: the provider only; personal API tokens keep working.",
    )
    label: str = Field(
        "",
        description="The provider's name on the sign-in button ('Sign in with <label>'). "
        "Default: the issuer's host name.",
    )
    clock_skew_seconds: int = Field(
        60, ge=0, le=300, description="Tolerated clock difference when checking token times."
    )

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        """https, or http on loopback; no query or fragment; no trailing slash."""
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        loopback = parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK_NAMES
        if not (parts.scheme == "https" or loopback) or not parts.hostname:
            raise ValueError("oidc.issuer is an https URL (http only on loopback)")
        if parts.query or parts.fragment or parts.username is not None:
            raise ValueError("oidc.issuer has no query, fragment or credentials")
        return value.strip().rstrip("/")

    @field_validator("admin_groups")
    @classmethod
    def _not_project_groups(cls, groups: list[str]) -> list[str]:
        """A project's group must never make anyone an administrator."""
        for group in groups:
            if group.startswith(PROJECT_GROUP_PREFIX):
                raise ValueError(f"oidc.admin_groups: {group!r} is a project's group")
        return groups

    @model_validator(mode="after")
    def _complete(self) -> OidcSettings:
        if self.issuer and not self.client_id:
            raise ValueError("BALSAM_OIDC__CLIENT_ID is required with BALSAM_OIDC__ISSUER")
        if not self.issuer and not self.password_login:
            raise ValueError(
                "BALSAM_OIDC__PASSWORD_LOGIN=false needs BALSAM_OIDC__ISSUER: nobody could sign in"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.issuer is not None

    @property
    def button_label(self) -> str:
        return self.label or url_host(self.issuer)


class WorkspaceSettings(BaseModel):
    """Processing environments (JupyterLab workspaces)."""

    provider: Literal["local", "kubernetes"] = Field(
        "local",
        description="'local' runs each workspace as a JupyterLab process on this machine "
        "(on a unix socket, reached through Balsam's proxy); 'kubernetes' renders a Pod, "
        "Service and PVC per workspace (see docs/kubernetes.md).",
    )
    templates_file: Path | None = Field(
        None,
        description="JSON file with the workspace templates (a list of {id, name, "
        "description, requirements, memoryMib, cpu, idleTimeoutMinutes, and optionally "
        "systemPackages, kernels, cranPackages}). Default: the built-in 'python', 'r' and "
        "'elyra' templates.",
    )
    environments_dir: Path | None = Field(
        None,
        description="Where template environments are built, once per template version. "
        "Default: <data_dir>/environments.",
    )
    python: str | None = Field(
        None,
        description="Python interpreter the environments are built from. Default: the one "
        "Balsam runs on.",
    )
    index_url: str | None = Field(
        None,
        description="Package index environments are installed from. Default: the package "
        "installer's own (PyPI, or UV_INDEX_URL / its config).",
    )
    pip_index_url: str | None = Field(
        None,
        description="Package index pip installs from inside workspaces (PIP_INDEX_URL; "
        "the machine's own pip configuration's extra indexes and find-links are cleared "
        "there). Default: index_url, else PyPI.",
    )
    cran_url: str | None = Field(
        None,
        description="CRAN mirror R packages are installed from: templates' cranPackages at "
        "build, and install.packages() in R workspaces (their 'repos' option). Default: "
        "none (R and R packages come from the machine's Debian packages; a template naming "
        "CRAN packages then fails to build).",
    )
    start_timeout_seconds: int = Field(
        180, ge=5, description="Longest a workspace server may take to answer after start."
    )
    build_timeout_seconds: int = Field(
        1800, ge=30, description="Longest building one template environment may take."
    )
    poll_seconds: float = Field(
        15,
        gt=0,
        description="How often running workspaces are checked for liveness and activity "
        "(idle culling).",
    )
    stop_on_shutdown: bool = Field(
        True,
        description="Stop every local workspace when `balsam up` stops. When false, running "
        "workspaces are found again on the next start.",
    )
    members_may_open: bool = Field(
        False,
        description="Let every project member open a workspace through the proxy. By "
        "default only its owner can. Its owner controls the pages members then get (a "
        "workspace's server is its owner's to replace): members must trust owners.",
    )
    uid_base: int = Field(
        200_000,
        ge=1000,
        description="When Balsam runs as root, each local workspace runs under its own "
        "numeric user id (the first free one at or above uid_base, claimed in the host-wide "
        "uid_registry_dir), so workspaces cannot read each other's homes or Balsam's data. "
        "Ignored when not root.",
    )
    max_processes: int = Field(
        1024,
        ge=64,
        description="When Balsam runs as root: most processes (threads included) a local "
        "workspace's own uid may have at once (RLIMIT_NPROC, set on its server and inherited "
        "by kernels and terminals); a fork beyond it fails inside the workspace. Ignored when "
        "not root.",
    )
    max_per_user: int = Field(
        10,
        ge=1,
        description="Most workspaces one user may have (running or not, all projects "
        "together): each has a uid, a home and its own limits, so without this one user's "
        "workspaces together would be bounded by nothing. Admins included.",
    )
    single_uid_for_all_users: bool = Field(
        False,
        description="UNSAFE. When Balsam does not run as root, local workspaces run as "
        "Balsam's own user and can read its data directory (database, repositories, object "
        "data, keys) and each other's homes. By default such an installation runs workspaces "
        "for one Balsam user only (the first who owns a workspace; others get 409). True runs "
        "them for every user anyway: only for installations whose users all trust each other "
        "with everything; logged as a warning at startup and shown to admins.",
    )
    control_plane_url: str | None = Field(
        None,
        description="URL workspaces reach Balsam's git endpoint at. Default: public_url.",
    )
    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port users' browsers reach workspaces (JupyterLab) at: an origin of "
        "their own, so a script in a workspace page cannot read portal pages or the API as "
        "its user. Default: the control plane's port + 1. 0 serves workspaces on the control "
        "plane's origin instead (not for production; see docs/security.md).",
    )
    public_url: str | None = Field(
        None,
        description="Base URL users reach workspaces at, when a reverse proxy serves them, "
        "with * for the workspace's id: https://*.ws.example.org gives each workspace a "
        "host name (an origin) of its own, <id>.ws.example.org, under a name other than "
        "public_url's (required in production; a URL without * serves them all under one "
        "host name, see docs/security.md). Default: <id>.localhost on the workspace port "
        "while the portal is on loopback, otherwise the host name typed (not a site of "
        "their own).",
    )
    runtime_dir: Path | None = Field(
        None,
        description="Folder of the local workspaces' unix sockets (each server and its "
        "kernels; no workspace opens a TCP port). Must be short (socket paths are limited "
        "to 107 bytes) and writable by Balsam alone. Default: /run/balsam as root, "
        "otherwise $XDG_RUNTIME_DIR/balsam or <tmp>/balsam-<uid>.",
    )
    kubernetes_image: str = Field(
        "balsam-workspace-{template_id}:{version}",
        description="Kubernetes provider: the image of a template version, a pattern over "
        "template_id, version and name (built from the template's pinned requirements).",
    )
    kubernetes_namespace_prefix: str = Field(
        "balsam-proj-",
        min_length=1,
        description="Kubernetes provider: prefix of the namespace of each project.",
    )
    kubernetes_storage_class: str | None = Field(
        None, description="Kubernetes provider: storage class of workspace homes (PVCs)."
    )
    kubernetes_control_plane_namespace: str = Field(
        "balsam",
        description="Kubernetes provider: namespace of Balsam's control plane, the only "
        "place workspace servers accept connections from (network policy).",
    )

    @field_validator("public_url")
    @classmethod
    def _one_wildcard_label(cls, url: str | None) -> str | None:
        """``*`` only as the whole first label of the host name (the workspace's id)."""
        if url and "*" in url:
            scheme, _, rest = url.partition("://")
            if not rest.startswith("*.") or "*" in rest[2:] or scheme not in ("http", "https"):
                raise ValueError(
                    "a * in workspaces.public_url stands for the workspace's id: "
                    "http(s)://*.<domain>[:port], nothing else"
                )
        return url


class ConnectionSettings(BaseModel):
    """Data connections: how their secrets are sealed, and limits of imports from them."""

    key: SecretStr | None = Field(
        None,
        description="The key that seals connection secrets (passwords, secret keys, tokens) "
        "in the database: 32 random bytes, URL-safe base64 (python -c 'import base64, os; "
        "print(base64.urlsafe_b64encode(os.urandom(32)).decode())'). Set it, the same on "
        "every replica, when several machines share the database. Unset: Balsam creates one "
        "on first use in <data_dir>/secrets/connections.key (mode 0600). Never stored in "
        "the database.",
    )
    previous_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Earlier keys, still accepted for opening secrets sealed with them "
        "(key rotation: set the new key, list the old one here, run `balsam admin "
        "reseal-connections`, then drop it). A JSON list.",
    )
    query_timeout_seconds: int = Field(
        300, ge=1, description="Longest an import's SQL query may run (statement timeout)."
    )
    query_max_rows: int = Field(
        10_000_000, ge=1, description="Most rows an import may store; more is refused."
    )
    query_max_bytes: int = Field(
        2 * 1024**3, ge=1024, description="Largest Parquet file an import may write (bytes)."
    )


class Settings(BaseSettings):
    """All of Balsam's settings."""

    model_config = SettingsConfigDict(
        env_prefix="BALSAM_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "production"] = Field(
        "development",
        description="'production' refuses to start with insecure settings: public_url must "
        "be https, auth.cookie_secure on, workspaces.single_uid_for_all_users off, "
        "workspaces.port not 0, workspaces.public_url https://*.<domain> (a host name per "
        "workspace) apart from the portal's.",
    )
    data_dir: Path = Field(
        Path(".balsam"),
        description="Where the database, repositories, object data and logs live.",
    )
    min_free_disk_mib: int = Field(
        512,
        ge=0,
        description="Free space (for users other than root) on the data directory's file "
        "system below which the health check says 'disk' is failing: workspaces' homes, "
        "repositories and object data share it, and storage that ran out needs a restart.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL. Default: SQLite at <data_dir>/balsam.db. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db.",
    )
    host: str = Field("127.0.0.1", description="Address the control plane binds to.")
    port: int = Field(8080, description="Port the control plane listens on.")
    public_url: str | None = Field(
        None,
        description="Base URL users reach Balsam at (used in clone URLs). Default: "
        "http://<host>:<port> for programs; bound to loopback, browsers are served the "
        "portal as http://localhost:<port> (workspaces are <id>.localhost).",
    )

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, url: str | None) -> str | None:
        """An absolute http(s) URL with a host (it goes into clone URLs and links)."""
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("public_url is an http(s) URL with a host name")
        return url

    cors_origins: list[str] = Field(
        default_factory=list,
        description="Web origins (scheme://host[:port], e.g. https://ui.example.org) whose "
        "pages may call the API from the browser (CORS): another web client, such as "
        "upstream's UI served apart from Balsam. Their calls authenticate with a bearer "
        "token; Balsam's session cookie counts on its own pages only. Preflights from them "
        "are answered, with credentials allowed; other origins get no CORS headers. A JSON "
        "list: '[\"https://ui.example.org\"]'. Empty: none (the portal needs none).",
    )

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        """Each an exact origin as browsers send it (lower case, no default port)."""
        return [_origin(origin) for origin in origins]

    admin_username: str = Field("admin", description="Username of the first admin account.")
    admin_password: SecretStr | None = Field(
        None,
        description="Password of the first admin account, used on first start only. "
        "When unset, one is generated and printed once.",
    )
    max_body_bytes: int = Field(
        1024 * 1024, description="Largest JSON request body accepted by the API (bytes)."
    )
    source_file_roots: list[Path] = Field(
        default_factory=list,
        description="Folders whose git repositories may be used as file:// URLs: a "
        "project's sourceLocation, or a knowledge library's repositoryUrl. Empty (the "
        "default) refuses file:// URLs, so users cannot copy repositories they may not read "
        "(e.g. other projects'). A JSON list: '[\"/srv/libraries\"]'.",
    )
    source_private_hosts: list[str] = Field(
        default_factory=list,
        description="Host names or addresses that URLs the server fetches (http(s) "
        "sourceLocation of projects, knowledge-library repositories, data imports and their "
        "redirects) may name even though "
        "they resolve to a loopback, private or link-local address (an internal GitLab, say). "
        "An entry 'host:port' ('[address]:port' for IPv6) allows that port only: prefer it, "
        "since a bare host allows every port on it (for 127.0.0.1, Balsam's own storage "
        "server's status pages too). "
        "Every other such host must resolve to public addresses only, so users and admins "
        "cannot make the server fetch from its own network.",
    )
    uid_registry_dir: Path = Field(
        Path("/var/lib/balsam/uids"),
        description="Host-wide registry of the numeric user ids Balsam runs workspaces (and "
        "the embedded SeaweedFS) under when it runs as root. Every Balsam installation on "
        "the host must use the same folder, so none hands out a uid another already uses. "
        "Root's alone (0700).",
    )
    storage: StorageSettings = Field(default_factory=StorageSettings)  # type: ignore[arg-type]
    git: GitSettings = Field(default_factory=GitSettings)  # type: ignore[arg-type]
    auth: AuthSettings = Field(default_factory=AuthSettings)  # type: ignore[arg-type]
    workspaces: WorkspaceSettings = Field(default_factory=WorkspaceSettings)  # type: ignore[arg-type]
    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)  # type: ignore[arg-type]
    imports: ImportSettings = Field(default_factory=ImportSettings)  # type: ignore[arg-type]
    runs: RunSettings = Field(default_factory=RunSettings)  # type: ignore[arg-type]
    oidc: OidcSettings = Field(default_factory=OidcSettings)  # type: ignore[arg-type]
    library_sync_interval_seconds: int = Field(
        600,
        ge=0,
        description="How often every knowledge library is fetched from its repository in "
        "the background. 0 disables periodic syncs (registration and explicit sync requests "
        "still sync).",
    )
    library_sync_timeout_seconds: int = Field(
        300, ge=1, description="Longest a single knowledge-library fetch may take."
    )
    library_public: bool = Field(
        False,
        description="Let anonymous visitors read knowledge libraries. By default only "
        "logged-in users can.",
    )
    library_render_max_bytes: int = Field(
        5 * 1024 * 1024,
        ge=1024,
        description="Largest library file rendered to HTML; larger files are offered "
        "for download only.",
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'balsam.db'}"

    @model_validator(mode="after")
    def _workspaces_have_their_own_port(self) -> Settings:
        port = self.workspace_port
        if port is not None and (port == self.port or port > 65535):
            raise ValueError(
                f"BALSAM_WORKSPACES__PORT ({port}) must be another port than BALSAM_PORT "
                f"({self.port}), at most 65535"
            )
        return self

    @model_validator(mode="after")
    def _production_is_secure(self) -> Settings:
        """In production, refuse what would expose users (one error naming each)."""
        if self.environment != "production":
            return self
        wrong = [
            message
            for insecure, message in (
                (
                    not (self.public_url or "").startswith("https://"),
                    "BALSAM_PUBLIC_URL must be an https:// URL",
                ),
                (not self.auth.cookie_secure, "BALSAM_AUTH__COOKIE_SECURE must be true"),
                (
                    bool(self.oidc.issuer) and not str(self.oidc.issuer).startswith("https://"),
                    "BALSAM_OIDC__ISSUER must be an https:// URL",
                ),
                (
                    self.workspaces.single_uid_for_all_users,
                    "BALSAM_WORKSPACES__SINGLE_UID_FOR_ALL_USERS must be false",
                ),
                (
                    self.workspaces.port == 0,
                    "BALSAM_WORKSPACES__PORT must not be 0 (workspaces on the portal's origin)",
                ),
                (
                    not _another_https_host(self.workspaces.public_url, self.public_url)
                    or not url_host(self.workspaces.public_url).startswith("*."),
                    "BALSAM_WORKSPACES__PUBLIC_URL must be an https://*.<domain> URL (a "
                    "host name per workspace) under a name other than BALSAM_PUBLIC_URL's",
                ),
            )
            if insecure
        ]
        if wrong:
            raise ValueError(
                "environment 'production' refuses insecure settings: " + "; ".join(wrong)
            )
        return self

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def workspace_port(self) -> int | None:
        """The port workspaces are served on (an origin of their own), or None when
        they share the control plane's origin (``workspaces.port`` = 0)."""
        if self.workspaces.port is None:
            return self.port + 1
        return self.workspaces.port or None

    @property
    def resolved_environments_dir(self) -> Path:
        return (self.workspaces.environments_dir or self.data_dir / "environments").resolve()

    @property
    def resolved_control_plane_url(self) -> str:
        return (self.workspaces.control_plane_url or self.resolved_public_url).rstrip("/")

    @property
    def resolved_s3_endpoint(self) -> str:
        return self.storage.endpoint_url or f"http://127.0.0.1:{self.storage.s3_port}"
