"""Kernels of a workspace server stop themselves when idle: the bound on what runs on
should Balsam, which culls idle workspaces, not come back after a ``kill -9`` (its
servers outlive it on purpose, to be re-attached)."""

from __future__ import annotations

from pathlib import Path

from balsam.providers.workspaces.jupyter import server_command, stop_when_idle


def test_the_fallback_leaves_the_supervisor_time_to_act_first() -> None:
    assert stop_when_idle(60) == 7200
    assert stop_when_idle(5) == 3600  # an hour at least
    command = server_command(
        Path("/env"), "/w/", Path("/s.sock"), Path("/h"), start_in="p", stop_when_idle_seconds=9
    )
    assert "--MappingKernelManager.cull_idle_timeout=9" in command
    assert "--MappingKernelManager.cull_interval=300" in command
