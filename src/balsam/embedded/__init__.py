"""Services Balsam runs as child processes of ``balsam up`` (and of the tests).

Each embedded service is a class with ``start()`` / ``stop()`` and context
manager support; failures to start raise :class:`EmbeddedServiceError`.
"""

from __future__ import annotations

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
    "SeaweedPorts",
    "SeaweedServer",
    "find_weed_binary",
    "load_or_create_admin_credentials",
    "port_is_free",
]
