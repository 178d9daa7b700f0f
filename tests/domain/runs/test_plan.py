"""Plans read from pipelines, notebooks and scripts (balsam.domain.runs.plan)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from balsam.domain.runs.plan import InvalidPlan, is_parameter_name, parse
from tests.fixtures.library import SCB_LIBRARY

PR_PARQUET = SCB_LIBRARY / "Resources" / "Produktionsflöden" / "Resurser" / "PR-Parquet.pipeline"
FOLDER = "Resources/Produktionsflöden/Resurser"


def pipeline(*nodes: dict[str, Any], version: int = 8) -> bytes:
    """An Elyra pipeline with ``nodes`` (see :func:`node`)."""
    return json.dumps(
        {
            "doc_type": "pipeline",
            "version": "3.0",
            "id": "p",
            "primary_pipeline": "primary",
            "pipelines": [
                {"id": "primary", "nodes": list(nodes), "app_data": {"version": version}}
            ],
        }
    ).encode()


def node(
    node_id: str,
    filename: str,
    *,
    after: tuple[str, ...] = (),
    op: str = "execute-notebook-node",
    outputs: tuple[str, ...] = (),
    env: tuple[Any, ...] = (),
) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "execution_node",
        "op": op,
        "app_data": {
            "component_parameters": {
                "filename": filename,
                "outputs": list(outputs),
                "env_vars": list(env),
                "dependencies": [],
            },
            "ui_data": {"label": filename},
        },
        "inputs": [{"id": "inPort", "links": [{"node_id_ref": p} for p in after]}],
    }


def test_scbs_mixed_pipeline_reads_as_four_nodes_in_a_chain() -> None:
    plan = parse(f"{FOLDER}/PR-Parquet.pipeline", PR_PARQUET.read_bytes())
    ordered = plan.order()
    assert [n.filename.rsplit("/", 1)[1] for n in ordered] == [
        "01-P-WriteParquet.ipynb",
        "02-P-PushToS3.ipynb",
        "03-R-PullFromS3.ipynb",
        "04-R-ReadParquet.ipynb",
    ]
    assert all(n.filename.startswith(FOLDER + "/") for n in ordered)
    assert [len(n.parents) for n in ordered] == [0, 1, 1, 1]
    assert ordered[0].outputs == (f"{FOLDER}/pipeline-tx.parquet",)
    assert "JUPYTERLAB_S3_SECRET_ACCESS_KEY" in ordered[1].env_names
    assert plan.descendants(ordered[1].id) == {ordered[2].id, ordered[3].id}
    assert len({n.key for n in ordered}) == 4


def test_single_files_are_one_node() -> None:
    notebook = json.dumps({"cells": [], "metadata": {}, "nbformat": 4}).encode()
    assert parse("a/b.ipynb", notebook).nodes[0].kind == "notebook"
    assert parse("a/b.py", b"print(1)").nodes[0].kind == "python"
    assert parse("a/b.R", b"print(1)").nodes[0].kind == "r"


@pytest.mark.parametrize(
    ("path", "content", "says"),
    [
        ("a.txt", b"x", "Balsam runs pipelines"),
        ("a.ipynb", b"{not json", "not a Jupyter notebook"),
        ("p.pipeline", b"[]", "not an Elyra pipeline"),
        ("p.pipeline", pipeline(), "no nodes"),
        ("p.pipeline", pipeline(node("a", "a.ipynb"), version=99), "newer Elyra"),
        ("p.pipeline", pipeline(node("a", "../../etc/passwd.ipynb")), "outside the repository"),
        ("p.pipeline", pipeline(node("a", "/etc/x.ipynb")), "outside the repository"),
        ("p.pipeline", pipeline(node("a", "a.ipynb", outputs=("../x",))), "outside"),
        ("p.pipeline", pipeline(node("a", "a.ipynb", op="kfp-thing")), "does not run"),
        ("p.pipeline", pipeline(node("a", "a.py")), "must name a notebook"),
        ("p.pipeline", pipeline(node("a", "a.ipynb", after=("zz",))), "not in the pipeline"),
        (
            "p.pipeline",
            pipeline(node("a", "a.ipynb", after=("b",)), node("b", "b.ipynb", after=("a",))),
            "cycle",
        ),
        ("p.pipeline", pipeline(node("a", "a.ipynb"), node("a", "b.ipynb")), "same id"),
        ("p.pipeline", pipeline(node("a", "a.ipynb", env=({"env_var": "X;rm"},))), "invalid"),
    ],
)
def test_what_cannot_run_is_refused_with_the_reason(path: str, content: bytes, says: str) -> None:
    with pytest.raises(InvalidPlan) as caught:
        parse(path, content)
    assert says in caught.value.message % caught.value.params


def test_parameter_names_work_in_python_and_r() -> None:
    assert is_parameter_name("year") and is_parameter_name("n_2")
    for bad in ("", "2x", "a-b", "a.b", "class", "TRUE", "function", "x" * 65, "_x"):
        assert not is_parameter_name(bad), bad
