"""The wiring, in one place: the providers chosen by name from settings, and the
application context that holds them (with its workspace supervisor).

Everything is built here and handed down; nothing below (domain, providers, web)
builds its own collaborators.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from balsam.context import AppContext
from balsam.db.engine import make_engine, make_sessionmaker
from balsam.db.migrate import upgrade
from balsam.domain.audit.service import AuditLog
from balsam.domain.workspaces.secrets import WorkspaceSecretStore
from balsam.domain.workspaces.supervisor import WorkspaceSupervisor
from balsam.domain.workspaces.templates import load_templates
from balsam.providers.bundle import Providers
from balsam.providers.storage.base import StorageProvider
from balsam.providers.workspaces.base import WorkspaceProvider
from balsam.settings import Settings

if TYPE_CHECKING:
    from balsam.providers.identity.base import IdentityProvider
    from balsam.providers.workspaces.environments import EnvironmentBuilder

log = logging.getLogger(__name__)


def build_context(settings: Settings, providers: Providers | None = None) -> AppContext:
    """Create the database (migrated), providers and audit log for one app."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    ctx = AppContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        providers=providers or build_providers(settings),
        audit=AuditLog(sessions),
        templates=load_templates(settings.workspaces.templates_file),
        workspace_secrets=WorkspaceSecretStore(
            settings.data_dir.resolve() / "secrets" / "workspaces"
        ),
    )
    ctx.supervisor = WorkspaceSupervisor(ctx)
    return ctx


def derive(ctx: AppContext, **changes: Any) -> AppContext:
    """A copy of ``ctx`` with ``changes`` (e.g. other providers; tests), with a
    workspace supervisor of its own."""
    copy = dataclasses.replace(ctx, **changes)
    copy.supervisor = WorkspaceSupervisor(copy)
    return copy


def build_providers(settings: Settings) -> Providers:
    """Build the configured providers. Embedded servers must already be running
    (``balsam up`` starts them); this only connects to them."""
    from balsam.providers.git.local import LocalGitProvider
    from balsam.providers.workspaces.environments import EnvironmentBuilder

    return Providers(
        git=LocalGitProvider(settings.data_dir.resolve() / "git"),
        storage=build_storage_provider(settings),
        workspaces=build_workspace_provider(
            settings,
            EnvironmentBuilder(
                settings.resolved_environments_dir,
                python=settings.workspaces.python,
                index_url=settings.workspaces.index_url,
                cran_url=settings.workspaces.cran_url,
                pip_index_url=settings.workspaces.pip_index_url,
                timeout=settings.workspaces.build_timeout_seconds,
            ),
        ),
        identity=build_identity_provider(settings),
    )


def build_identity_provider(settings: Settings) -> IdentityProvider | None:
    """The OpenID Provider of ``oidc.issuer``; None when none is configured. Nothing is
    fetched here: discovery and keys come at first use, so Balsam starts while the
    provider is down."""
    oidc = settings.oidc
    if oidc.issuer is None:
        return None
    from balsam.providers.identity.oidc import OidcProvider

    secret = oidc.client_secret.get_secret_value() if oidc.client_secret else None
    return OidcProvider(
        oidc.issuer,
        oidc.client_id,
        secret,
        scopes=oidc.scopes,
        clock_skew=oidc.clock_skew_seconds,
    )


def build_storage_provider(settings: Settings) -> StorageProvider:
    """'seaweedfs': keys through the embedded weed's filer IAM gRPC service (its
    S3 port serves no IAM API); 's3-iam': keys through the AWS IAM API."""
    from balsam.embedded.seaweedfs import GRPC_PORT_OFFSET
    from balsam.providers.storage.s3iam import S3IamStorage
    from balsam.providers.storage.seaweed_iam import SeaweedIamStorage

    storage = settings.storage
    if storage.admin_access_key is None or storage.admin_secret_key is None:
        raise RuntimeError(
            "Storage admin credentials are not set (BALSAM_STORAGE__ADMIN_ACCESS_KEY / "
            "BALSAM_STORAGE__ADMIN_SECRET_KEY); `balsam up` sets them for the embedded server."
        )
    s3 = (settings.resolved_s3_endpoint, storage.region, storage.admin_access_key,
          storage.admin_secret_key.get_secret_value())  # fmt: skip
    if storage.provider == "s3-iam":
        return S3IamStorage(*s3)
    grpc_port = storage.filer_grpc_port or storage.filer_port + GRPC_PORT_OFFSET
    conf_dir = storage.conf_dir or settings.data_dir.resolve() / "storage" / "conf"
    return SeaweedIamStorage.connect(
        *s3, filer_grpc_address=f"127.0.0.1:{grpc_port}", conf_dir=conf_dir
    )


def build_workspace_provider(
    settings: Settings, environments: EnvironmentBuilder
) -> WorkspaceProvider:
    if settings.workspaces.provider == "kubernetes":
        from balsam.providers.workspaces.kubernetes import KubernetesWorkspaceProvider
        from balsam.providers.workspaces.kubernetes_render import KubernetesConfig

        k8s = settings.workspaces
        return KubernetesWorkspaceProvider(
            KubernetesConfig(
                image_for=k8s.kubernetes_image,
                namespace_prefix=k8s.kubernetes_namespace_prefix,
                storage_class=k8s.kubernetes_storage_class,
                control_plane_namespace=k8s.kubernetes_control_plane_namespace,
            ),
            start_timeout=k8s.start_timeout_seconds,
        )
    from balsam.hostuids import HostUidRegistry
    from balsam.providers.workspaces.local import LocalWorkspaceProvider

    local = LocalWorkspaceProvider(
        settings.data_dir.resolve() / "workspaces",
        environments,
        uid_base=settings.workspaces.uid_base,
        uid_registry=HostUidRegistry(settings.uid_registry_dir, base=settings.workspaces.uid_base),
        start_timeout=settings.workspaces.start_timeout_seconds,
        runtime_dir=settings.workspaces.runtime_dir,
        max_processes=settings.workspaces.max_processes,
    )
    if not local.isolates_users:
        _log_unisolated(settings)
    return local


def _log_unisolated(settings: Settings) -> None:
    """Say at startup that workspaces run as Balsam's own user (not root)."""
    if settings.workspaces.single_uid_for_all_users:
        log.warning(
            "UNSAFE: workspaces.single_uid_for_all_users is set and Balsam does not run as "
            "root: every user's workspace runs as Balsam's own system user and can read its "
            "data directory (database, repositories, object data, keys) and every other "
            "workspace's home. Run Balsam as root to give each workspace a user of its own."
        )
    else:
        log.info(
            "Balsam does not run as root: workspaces run as its own system user, for "
            "one Balsam user only (workspaces.single_uid_for_all_users is off)."
        )
