"""Liveness and readiness of one Balsam instance and the services it depends on."""
