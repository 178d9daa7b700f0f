"""A run's OpenLineage events (spec 2-0-2, built with the ``openlineage-python`` client's
models): START and COMPLETE, FAIL or ABORT for the run and for each node that started.

* The job namespace is the project (``balsam:<project>``); the run's job is the file it
  ran, each node's job ``<file>/<node id>`` with a ``parent`` facet naming the run.
* Run ids are UUIDs derived from Balsam's run (and node) ids, so the same run always has
  the same ids.
* Datasets are S3 objects: namespace ``s3://<bucket>``, name the key, and a ``version``
  facet with the S3 version id. The run's inputs are its declared inputs; a node's outputs
  are what it wrote (kept with the run); the run's outputs are what it published.

They are made when the run ends, from what its record holds (its times, states, objects),
kept with the run (``GET …/runs/{id}/openlineage``, JSON lines) and, when an admin set
``runs.openlineage_url``, posted there one by one; a receiver that fails is logged and
changes nothing of the run.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import dataset_version_dataset, error_message_run, parent_run
from openlineage.client.serde import Serde

from balsam import __version__

log = logging.getLogger(__name__)

PRODUCER = f"urn:balsam:{__version__}"
_ENDS = {"succeeded": RunState.COMPLETE, "failed": RunState.FAIL, "cancelled": RunState.ABORT}


def run_uuid(run_id: str, node_id: str = "") -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"balsam:run:{run_id}/{node_id}"))


def events(record: dict[str, Any], bucket: str) -> list[str]:
    """The run's events, oldest first, each serialised as one JSON document."""
    info = record["run"]
    namespace = f"balsam:{info['project']}"
    job = Job(namespace=namespace, name=info["path"])
    run_id = run_uuid(info["id"])
    made = [RunEvent(eventType=RunState.START, eventTime=info["startedAt"] or info["createdAt"],
                     run=Run(runId=run_id), job=job, producer=PRODUCER,
                     inputs=[_input(bucket, i) for i in record.get("inputs", [])])]  # fmt: skip
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=run_id), job=parent_run.Job(namespace=namespace, name=job.name)
    )
    published = []
    for node in record["nodes"]:
        if not node.get("startedAt"):
            continue
        node_run = Run(runId=run_uuid(info["id"], node["id"]), facets={"parent": parent})
        node_job = Job(namespace=namespace, name=f"{info['path']}/{node['id']}")
        made.append(RunEvent(eventType=RunState.START, eventTime=node["startedAt"],
                             run=node_run, job=node_job, producer=PRODUCER))  # fmt: skip
        end = _ENDS.get(node["state"], RunState.FAIL)
        facets = {"parent": parent} | _error(node.get("error"), end)
        made.append(RunEvent(
            eventType=end, eventTime=node.get("endedAt") or info["endedAt"],
            run=Run(runId=node_run.runId, facets=facets), job=node_job, producer=PRODUCER,
            outputs=[_output(bucket, o) for o in node.get("outputs", [])],
        ))  # fmt: skip
        published += node.get("published", [])
    end = _ENDS.get(info["state"], RunState.FAIL)
    made.append(RunEvent(eventType=end, eventTime=info["endedAt"],
                         run=Run(runId=run_id, facets=_error(info.get("error"), end)),
                         job=job, producer=PRODUCER,
                         outputs=[_output(bucket, o) for o in published]))  # fmt: skip
    return [Serde.to_json(event) for event in made]


def _error(message: str | None, end: RunState) -> dict[str, Any]:
    if end != RunState.FAIL or not message:
        return {}
    facet = error_message_run.ErrorMessageRunFacet(message=message, programmingLanguage="python")
    return {"errorMessage": facet}


def _version(artifact: dict[str, Any]) -> dict[str, Any]:
    if not artifact.get("versionId"):
        return {}
    version = dataset_version_dataset.DatasetVersionDatasetFacet(
        datasetVersion=artifact["versionId"]
    )
    return {"version": version}


def _input(bucket: str, artifact: dict[str, Any]) -> InputDataset:
    return InputDataset(namespace=f"s3://{bucket}", name=artifact["path"],
                        facets=_version(artifact))  # fmt: skip


def _output(bucket: str, artifact: dict[str, Any]) -> OutputDataset:
    return OutputDataset(namespace=f"s3://{bucket}", name=artifact["path"],
                         facets=_version(artifact))  # fmt: skip


def send(url: str, lines: list[str]) -> None:
    """POST each event to ``url``; a failure is logged, never raised."""
    try:
        with httpx.Client(timeout=5, follow_redirects=False) as client:
            for line in lines:
                answer = client.post(url, content=line,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
                answer.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("OpenLineage events could not be sent to %s: %s", url, exc)
