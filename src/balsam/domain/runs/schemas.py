"""Shapes of the runs API (``/api/v1/projects/{id}/runs``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from balsam.domain.schemas import ApiModel

RunState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class RunCreate(ApiModel):
    branch_id: str = Field(alias="branchId", min_length=1, max_length=100)
    path: str = Field(
        min_length=1,
        max_length=1024,
        description="The file to run, from the repository root: a .pipeline, a notebook "
        "(.ipynb) or a script (.py, .R).",
    )
    parameters: dict[str, Any] | None = Field(
        None,
        description="Values for the notebooks' parameters (injected after the cell tagged "
        "'parameters'; scripts read them as JSON from BALSAM_PARAMETERS).",
    )
    commit: str | None = Field(
        None,
        min_length=7,
        max_length=64,
        description="A commit on the branch (hex); default: the branch's head.",
    )
    template: str | None = Field(
        None,
        max_length=63,
        description="The workspace template whose environment runs it (Balsam's extension; "
        "default: the installation's runs.default_template).",
    )


RerunMode = Literal["exact", "latest-inputs", "new-parameters", "head"]


class RerunCreate(ApiModel):
    mode: RerunMode = Field(
        description="exact: the same commit, environment, parameters and input versions; "
        "latest-inputs: the same, with the inputs' current versions; new-parameters: the "
        "same commit with 'parameters'; head: the branch's head now."
    )
    parameters: dict[str, Any] | None = Field(None, description="For new-parameters.")


Verdict = Literal["identical", "differs", "missing"]


class OutputComparison(_Out):
    node: str
    path: str = Field(description="The declared output, from the repository root.")
    original: str | None = Field(description="SHA-256 in the original run (None: missing).")
    rerun: str | None = Field(description="SHA-256 in the re-run (None: missing).")
    verdict: Verdict


class Comparison(_Out):
    rerun_of: str = Field(alias="rerunOf")
    mode: str | None
    outputs: list[OutputComparison]


class RunNodePublic(_Out):
    id: str
    label: str
    kind: str
    filename: str
    state: RunState
    error: str | None = None
    started_at: datetime | None = Field(None, alias="startedAt")
    ended_at: datetime | None = Field(None, alias="endedAt")


class RunPublic(_Out):
    id: str
    project_id: str = Field(alias="projectId")
    branch: str
    state: RunState
    path: str
    kind: str
    commit: str
    dirty: bool
    parameters: dict[str, Any]
    template: str
    environment: str
    error: str | None = None
    created_by: str = Field(alias="createdBy")
    created_at: datetime = Field(alias="createdAt")
    started_at: datetime | None = Field(None, alias="startedAt")
    ended_at: datetime | None = Field(None, alias="endedAt")
    rerun_of: str | None = Field(None, alias="rerunOf")
    rerun_mode: str | None = Field(None, alias="rerunMode")
    record_sha256: str | None = Field(None, alias="recordSha256")
    nodes: list[RunNodePublic]


class RunList(_Out):
    items: list[RunPublic]
    total: int


class LineageInput(_Out):
    path: str
    version_id: str = Field(alias="versionId")
    sha256: str
    produced_by: ProducedBy | None = Field(None, alias="producedBy")


class ProducedBy(_Out):
    run_id: str = Field(alias="runId")
    node: str
    path: str = Field(description="The file the run ran.")
    commit: str
    environment: str
    inputs: list[LineageInput] = Field(
        default_factory=list, description="What the node read, each with its own producer."
    )


class UsedBy(_Out):
    run_id: str = Field(alias="runId")
    node: str = Field(description="The node; '' for every node of the run.")


class Lineage(_Out):
    """Where an object version came from and where it went (recorded runs)."""

    path: str
    version_id: str = Field(alias="versionId")
    produced_by: ProducedBy | None = Field(None, alias="producedBy")
    inputs: list[LineageInput]
    used_by: list[UsedBy] = Field(alias="usedBy")


LineageInput.model_rebuild()
