"""Services Balsam runs as child processes of ``balsam up`` (and of the tests).

Each embedded service is a class with ``start()`` / ``stop()`` and context
manager support; failures to start raise :class:`EmbeddedServiceError`.
"""

from __future__ import annotations

from balsam.embedded.seaweed_pki import (
    SeaweedClientTls,
    client_tls,
    filer_jwt_key,
    prepare_security,
    rotate_pki,
)
from balsam.embedded.seaweedfs import (
    EmbeddedServiceError,
    PortInUseError,
    SeaweedPorts,
    SeaweedServer,
    find_weed_binary,
    load_or_create_admin_credentials,
    port_is_free,
)

__all__ = [
    "EmbeddedServiceError",
    "PortInUseError",
    "SeaweedClientTls",
    "SeaweedPorts",
    "SeaweedServer",
    "client_tls",
    "filer_jwt_key",
    "find_weed_binary",
    "load_or_create_admin_credentials",
    "port_is_free",
    "prepare_security",
    "rotate_pki",
]
