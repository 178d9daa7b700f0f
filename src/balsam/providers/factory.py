"""Choose provider implementations by name from settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from balsam.context import Providers
from balsam.providers.workspaces.base import WorkspaceProvider
from balsam.settings import Settings

if TYPE_CHECKING:
    from balsam.providers.workspaces.environments import EnvironmentBuilder


def build_providers(settings: Settings) -> Providers:
    """Build the configured providers. Embedded servers must already be running
    (``balsam up`` starts them); this only connects to them."""
    from balsam.providers.git.local import LocalGitProvider
    from balsam.providers.storage.s3iam import S3IamStorage
    from balsam.providers.workspaces.environments import EnvironmentBuilder

    storage = settings.storage
    if storage.admin_access_key is None or storage.admin_secret_key is None:
        raise RuntimeError(
            "Storage admin credentials are not set (BALSAM_STORAGE__ADMIN_ACCESS_KEY / "
            "BALSAM_STORAGE__ADMIN_SECRET_KEY); `balsam up` sets them for the embedded server."
        )
    return Providers(
        git=LocalGitProvider(settings.data_dir.resolve() / "git"),
        storage=S3IamStorage(
            endpoint_url=settings.resolved_s3_endpoint,
            region=storage.region,
            admin_access_key=storage.admin_access_key,
            admin_secret_key=storage.admin_secret_key.get_secret_value(),
        ),
        workspaces=build_workspace_provider(settings, EnvironmentBuilder(
            settings.resolved_environments_dir, python=settings.workspaces.python,
            index_url=settings.workspaces.index_url,
            timeout=settings.workspaces.build_timeout_seconds)),
    )


def build_workspace_provider(settings: Settings, environments: EnvironmentBuilder
                             ) -> WorkspaceProvider:
    if settings.workspaces.provider == "kubernetes":
        from balsam.providers.workspaces.kubernetes import KubernetesWorkspaceProvider
        from balsam.providers.workspaces.kubernetes_render import KubernetesConfig

        k8s = settings.workspaces
        return KubernetesWorkspaceProvider(KubernetesConfig(
            image_for=k8s.kubernetes_image, namespace_prefix=k8s.kubernetes_namespace_prefix,
            storage_class=k8s.kubernetes_storage_class,
            control_plane_namespace=k8s.kubernetes_control_plane_namespace),
            start_timeout=k8s.start_timeout_seconds)
    from balsam.providers.workspaces.local import LocalWorkspaceProvider

    return LocalWorkspaceProvider(
        settings.data_dir.resolve() / "workspaces", environments,
        uid_base=settings.workspaces.uid_base,
        start_timeout=settings.workspaces.start_timeout_seconds)
