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
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from balsam.providers.workspaces.base import EnvironmentSpec, ResourceLimits

_DEBIAN_NAME = re.compile(r"^[a-z0-9][a-z0-9.+-]+$")
_CRAN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$")
#: What an R kernel needs of the machine: R itself and IRkernel; the R package that
#: reaches the bucket runs on reticulate.
R_PACKAGES = frozenset({"r-base-core", "r-cran-irkernel", "r-cran-reticulate"})
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\[\],-]*==[A-Za-z0-9.+!*-]+$")
#: Each list of names a template gives: its pattern, and what a refusal says.
_NAMES = {
    "requirements": (_PINNED, "requirements must be pinned as name==version"),
    "system_packages": (_DEBIAN_NAME, "not Debian package names"),
    "cran_packages": (_CRAN_NAME, "not R package names"),
}


class WorkspaceTemplate(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    requirements: tuple[str, ...] = Field(min_length=1)
    #: Debian packages the template needs on the machine (R and R packages come from
    #: them); ``make run`` installs those of the built-in templates.
    system_packages: tuple[str, ...] = ()
    #: The kernels besides Python: "ir" (R, by IRkernel; needs r-base-core and
    #: r-cran-irkernel among ``system_packages``).
    kernels: tuple[Literal["python3", "ir"], ...] = ("python3",)
    #: R packages installed from the CRAN mirror the installation names
    #: (BALSAM_WORKSPACES__CRAN_URL); refused at build without one.
    cran_packages: tuple[str, ...] = ()
    memory_mib: int = Field(4096, ge=256)
    cpu: float = Field(1.0, gt=0)
    idle_timeout_minutes: int = Field(60, ge=1)

    @field_validator("requirements", "system_packages", "cran_packages")
    @classmethod
    def _well_named(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        """Each list's entries match its pattern (they reach installers' command lines)."""
        pattern, refusal = _NAMES[info.field_name or ""]
        bad = [entry for entry in value if not pattern.match(entry)]
        if bad:
            raise ValueError(f"{refusal}: {bad}")
        return value

    @model_validator(mode="after")
    def _r_needs_r(self) -> WorkspaceTemplate:
        if ("ir" in self.kernels or self.cran_packages) and not set(
            self.system_packages
        ) >= R_PACKAGES:
            raise ValueError(f"an R kernel needs the system packages {sorted(R_PACKAGES)}")
        return self

    @property
    def environment(self) -> EnvironmentSpec:
        return EnvironmentSpec(
            self.id,
            self.requirements,
            system_packages=self.system_packages,
            r="ir" in self.kernels,
            cran_packages=self.cran_packages,
        )

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
