"""The authenticating reverse proxy to workspaces at ``/workspaces/<id>/``."""
