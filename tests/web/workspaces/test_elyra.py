"""The Elyra template: the pipeline editor is in JupyterLab, and SCB's own
pipeline (its Python nodes) runs with `elyra-pipeline run` and the local
runtime, writing to the project's bucket with the injected credentials."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from balsam.context import AppContext
from tests.fixtures.app import TestUser
from tests.fixtures.workspaces import Kernel, wait_state
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
        f"{live_url}{elyra_ws['url']}lab", headers=elyra_user.headers, follow_redirects=True
    )
    assert page.status_code == 200
    assert re.search(r"@elyra/pipeline-editor-extension", page.text), "no Elyra extension"
    assert elyra_ws["environment"]["packages"]["elyra"] == "4.1.1"


PIPELINE = """
import json, os, subprocess
repo = os.path.expanduser('~/' + os.environ['BALSAM_PROJECT'])
folder = os.path.join(repo, 'Resources/Produktionsflöden/Resurser')
doc = json.load(open(os.path.join(folder, 'PR-Parquet.pipeline')))
pipeline = doc['pipelines'][0]
python = {'01-P-WriteParquet.ipynb', '02-P-PushToS3.ipynb'}  # the R nodes need an R kernel
pipeline['nodes'] = [n for n in pipeline['nodes']
                     if n['app_data']['component_parameters']['filename'] in python]
json.dump(doc, open(os.path.join(folder, 'python.pipeline'), 'w'))
push = os.path.join(folder, '02-P-PushToS3.ipynb')
nb = json.load(open(push))
for cell in nb['cells']:
    cell['source'] = ''.join(cell['source']).replace('XXXX', os.environ['BALSAM_BUCKET'])
json.dump(nb, open(push, 'w'))
done = subprocess.run(['elyra-pipeline', 'run', 'python.pipeline'], cwd=folder,
                      capture_output=True, text=True)
print(done.returncode)
print(done.stdout[-3000:], done.stderr[-3000:])
"""


def test_scb_pipeline_runs_locally(
    live_url: str, elyra_user: TestUser, ctx: AppContext, elyra_ws: dict[str, Any]
) -> None:
    kernel = Kernel(live_url, elyra_ws["id"], elyra_user.headers)
    try:
        result = kernel.execute(PIPELINE, timeout=300)
    finally:
        kernel.close()
    assert result.error is None, result
    assert result.stdout.startswith("0\n"), result.stdout
    s3 = ctx.providers.storage._s3  # type: ignore[attr-defined]
    tags = s3.get_object_tagging(Bucket=elyra_ws["bucket"], Key="pipeline-tx.parquet")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"color": "red", "size": "small"}
