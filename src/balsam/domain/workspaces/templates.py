"""Workspace templates: what a workspace runs (environment, limits, idle timeout).

Admins define templates in a JSON file (``BALSAM_WORKSPACES__TEMPLATES_FILE``);
without one, the built-in 'python' and 'elyra' templates are used. A template's
requirements must be pinned (``name==version``): its environment is built once
per version and its lock shown on every workspace.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from pydantic.alias_generators import to_camel

from balsam.providers.workspaces.base import EnvironmentSpec, ResourceLimits

_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\[\],-]*==[A-Za-z0-9.+!*-]+$")


class WorkspaceTemplate(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    requirements: tuple[str, ...] = Field(min_length=1)
    memory_mib: int = Field(4096, ge=256)
    cpu: float = Field(1.0, gt=0)
    idle_timeout_minutes: int = Field(60, ge=1)

    @field_validator("requirements")
    @classmethod
    def _pinned(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        loose = [r for r in value if not _PINNED.match(r)]
        if loose:
            raise ValueError(f"requirements must be pinned as name==version: {loose}")
        return value

    @property
    def environment(self) -> EnvironmentSpec:
        return EnvironmentSpec(self.id, self.requirements)

    @property
    def limits(self) -> ResourceLimits:
        return ResourceLimits(memory_mib=self.memory_mib, cpu=self.cpu)


def load_templates(path: Path | None) -> dict[str, WorkspaceTemplate]:
    """Templates by id, from ``path`` or the built-ins. Raises ValueError on a bad file."""
    text = (
        path.read_text()
        if path is not None
        else resources.files("balsam.data").joinpath("workspace_templates.json").read_text()
    )
    templates = TypeAdapter(list[WorkspaceTemplate]).validate_python(json.loads(text))
    by_id = {t.id: t for t in templates}
    if len(by_id) != len(templates):
        raise ValueError("workspace template ids must be unique")
    return by_id
