"""The Elyra template: the pipeline editor is in JupyterLab, and SCB's own
pipeline (Python and R nodes) runs with `elyra-pipeline run` and the local
runtime, writing to the project's bucket with the injected credentials."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from balsam.context import AppContext
from tests.fixtures.app import TestUser
from tests.fixtures.workspaces import Kernel, wait_state, ws_path
from tests.web.api.v1.test_library_reuse import copy_url

RESOURCE = "Resources/Produktionsflöden"


@pytest.fixture(scope="module")
def elyra_user(ctx: AppContext, app: Any) -> Iterator[TestUser]:
    from tests.fixtures.app import _make_user

    user = _make_user(ctx, app, "elyrauser", False)
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def elyra_ws(
    elyra_user: TestUser, supervisor: Any, scb_library: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    project = elyra_user.client.post(
        "/api/v1/projects",
        json={"name": "Produktionsflöde", "description": "", "branchName": "main"},
    ).json()
    copied = elyra_user.client.put(copy_url(project["id"], scb_library["id"], RESOURCE))
    assert copied.status_code == 200, copied.text
    created = elyra_user.client.post(
        "/api/v1/workspaces",
        json={
            "name": "Pipelines",
            "templateId": "elyra",
            "projectId": project["id"],
            "branchId": "main",
        },
    )
    assert created.status_code == 201, created.text
    body = wait_state(elyra_user, created.json()["id"], "running")
    yield {**body, "bucket": project["bucket"]}
    elyra_user.client.delete(f"/api/v1/workspaces/{body['id']}")


def test_the_pipeline_editor_is_installed(
    live_url: str, elyra_user: TestUser, elyra_ws: dict[str, Any]
) -> None:
    page = httpx.get(
        f"{live_url}{ws_path(elyra_ws)}lab", headers=elyra_user.headers, follow_redirects=True
    )
    assert page.status_code == 200
    assert re.search(r"@elyra/pipeline-editor-extension", page.text), "no Elyra extension"
    assert elyra_ws["environment"]["packages"]["elyra"] == "4.1.1"


PIPELINE = """
import json, os, subprocess
repo = os.path.expanduser('~/' + os.environ['BALSAM_PROJECT'])
folder = os.path.join(repo, 'Resources/Produktionsflöden/Resurser')
# As docs/r.md says: the bucket name filled in, the R notebooks' library() lines
# pointed at Balsam's R package. Nothing else changes.
edits = {
    '02-P-PushToS3.ipynb': [('XXXX', os.environ['BALSAM_BUCKET'])],
    '03-R-PullFromS3.ipynb': [('XXXX', os.environ['BALSAM_BUCKET']),
                              ('library("minio.s3")', 'library(balsam)'),
                              ('library(arrow)', 'library(balsam)')],
    '04-R-ReadParquet.ipynb': [('library(arrow)', 'library(balsam)')],
}
for name, changes in edits.items():
    path = os.path.join(folder, name)
    nb = json.load(open(path))
    for cell in nb['cells']:
        source = ''.join(cell['source'])
        for old, new in changes:
            source = source.replace(old, new)
        cell['source'] = source
    json.dump(nb, open(path, 'w'))
done = subprocess.run(['elyra-pipeline', 'run', 'PR-Parquet.pipeline'], cwd=folder,
                      capture_output=True, text=True)
print(done.returncode)
print(done.stdout[-3000:], done.stderr[-3000:])
import boto3, io, pyarrow.parquet as pq
s3 = boto3.client('s3')
rows = {k: pq.read_table(io.BytesIO(s3.get_object(Bucket=os.environ['BALSAM_BUCKET'],
        Key=k)['Body'].read())).to_pydict() for k in ('pipeline-tx.parquet', 'pipeline-rx.parquet')}
print('ROWS', json.dumps(rows, sort_keys=True))
read = json.load(open(os.path.join(folder, '04-R-ReadParquet.ipynb')))
print(json.dumps([o for c in read['cells'] for o in c.get('outputs', [])])[:4000])
"""


def test_scbs_python_and_r_pipeline_runs_end_to_end(
    live_url: str, elyra_user: TestUser, ctx: AppContext, elyra_ws: dict[str, Any]
) -> None:
    """PR-Parquet.pipeline, all four nodes: Python writes and pushes a Parquet file with
    tags, R pulls it (tags and metadata through SCB's own s3HTTP helpers) and writes it
    back, R reads it again with the same rows."""
    kernel = Kernel(live_url, elyra_ws["id"], elyra_user.headers)
    try:
        result = kernel.execute(PIPELINE, timeout=600)
    finally:
        kernel.close()
    assert result.error is None, result
    assert result.stdout.startswith("0\n"), result.stdout
    s3 = ctx.providers.storage._s3  # type: ignore[attr-defined]
    bucket = elyra_ws["bucket"]
    tags = s3.get_object_tagging(Bucket=bucket, Key="pipeline-tx.parquet")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"color": "red", "size": "small"}
    rows = json.loads(result.stdout.split("ROWS ", 1)[1].splitlines()[0])
    sent = {"Nombre": ["uno", "dos", "tres"], "Valor": [1, 2, 3]}
    assert rows == {"pipeline-rx.parquet": sent, "pipeline-tx.parquet": sent}
    # The last R node printed the three rows it read.
    assert all(word in result.stdout for word in ("uno", "dos", "tres")), result.stdout[-2000:]
