"""What a run runs: a plan of nodes read from a file in the project's repository.

Three kinds of file make a plan:

* an Elyra pipeline (``.pipeline``: pipeline-flow v3 with Elyra's ``app_data``, version
  at most :data:`MAX_ELYRA_VERSION`): its generic nodes ``execute-notebook-node``,
  ``execute-python-node`` and ``execute-r-node``, each with ``component_parameters``
  ``filename``, ``env_vars``, ``dependencies`` and ``outputs``; an edge is stored on the
  downstream node's ``inputs[0].links[]`` (``node_id_ref``);
* a notebook (``.ipynb``, Python or R by its kernel): one node;
* a script (``.py``, ``.r``/``.R``): one node.

Paths in a pipeline are relative to the pipeline's folder, as Elyra writes them; a plan
holds them relative to the repository root. Every rule is checked here, before anything
runs: a path that leaves the repository, a node kind Balsam does not run, a link to a
node that is not there, a cycle. :class:`InvalidPlan` names the first problem.
"""

from __future__ import annotations

import json
import keyword
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from balsam.errors import N_, InvalidInput

#: Newest Elyra pipeline ``app_data.version`` Balsam reads.
MAX_ELYRA_VERSION = 8
#: Most nodes one plan may have.
MAX_NODES = 200
#: Elyra's generic node types, and how Balsam runs each.
NODE_OPS: Mapping[str, Literal["notebook", "python", "r"]] = {
    "execute-notebook-node": "notebook",
    "execute-python-node": "python",
    "execute-r-node": "r",
}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
Kind = Literal["notebook", "python", "r"]


class InvalidPlan(InvalidInput):
    """The file cannot be run as it is (a 422 naming what is wrong)."""

    reason = "invalid-plan"


@dataclass(frozen=True)
class PlanNode:
    """One node: what it runs and what it needs.

    ``id`` is the pipeline's node id (or ``main`` for a single file), ``key`` a short,
    path-safe name for the node's folder of results (``runs/<run>/<key>/``)."""

    id: str
    key: str
    label: str
    kind: Kind
    #: The file it runs, relative to the repository root.
    filename: str
    #: Nodes that must succeed first (ids).
    parents: tuple[str, ...] = ()
    #: Names of environment variables the node asks for (Elyra's ``env_vars``; values
    #: written in the pipeline, ``NAME=value``, are kept in ``env``).
    env_names: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    #: Files of the repository the node uses besides its own (relative to the root).
    dependencies: tuple[str, ...] = ()
    #: Files the node writes, relative to the root: kept with the run, published after
    #: success, and given to the nodes after it.
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    path: str
    kind: Literal["pipeline", "notebook", "script"]
    nodes: tuple[PlanNode, ...]

    def order(self) -> list[PlanNode]:
        """The nodes parents first (a topological order; ties in file order)."""
        done: set[str] = set()
        ordered: list[PlanNode] = []
        pending = list(self.nodes)
        while pending:
            ready = [n for n in pending if all(p in done for p in n.parents)]
            if not ready:  # checked at parse time; here only for safety
                raise InvalidPlan(N_("The pipeline's links form a cycle."))
            for node in ready:
                ordered.append(node)
                done.add(node.id)
            pending = [n for n in pending if n.id not in done]
        return ordered

    def descendants(self, node_id: str) -> set[str]:
        """Every node that depends, directly or not, on ``node_id``."""
        found: set[str] = set()
        frontier = {node_id}
        while frontier:
            children = {n.id for n in self.nodes if set(n.parents) & frontier} - found
            found |= children
            frontier = children
        return found


def kind_of_file(path: str) -> Kind | None:
    """How a single file runs, by its name; None for a file Balsam does not run."""
    lower = path.lower()
    if lower.endswith(".ipynb"):
        return "notebook"
    if lower.endswith(".py"):
        return "python"
    if lower.endswith(".r"):
        return "r"
    return None


def parse(path: str, content: bytes) -> Plan:
    """The plan of the file at ``path`` (relative to the repository root) with
    ``content``; :class:`InvalidPlan` when it cannot run."""
    if path.lower().endswith(".pipeline"):
        return _pipeline(path, content)
    kind = kind_of_file(path)
    if kind is None:
        raise InvalidPlan(
            N_("Balsam runs pipelines (.pipeline), notebooks (.ipynb) and scripts (.py, .R).")
        )
    if kind == "notebook":
        _notebook(content)
    node = PlanNode(id="main", key="main", label=posixpath.basename(path), kind=kind, filename=path)
    return Plan(path, "notebook" if kind == "notebook" else "script", (node,))


def notebook_language(content: bytes) -> str:
    """``python`` or ``r``: the notebook's kernel language (InvalidPlan if not a notebook)."""
    meta = _notebook(content).get("metadata") or {}
    spec = meta.get("kernelspec") or {}
    language = str(spec.get("language") or (meta.get("language_info") or {}).get("name") or "")
    return "r" if language.lower() == "r" or spec.get("name") == "ir" else "python"


def _notebook(content: bytes) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise InvalidPlan(N_("The notebook is not a Jupyter notebook (JSON with cells)."))
    return data


def _pipeline(path: str, content: bytes) -> Plan:
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPlan(N_("The pipeline is not JSON.")) from exc
    if not isinstance(data, dict) or data.get("doc_type") != "pipeline":
        raise InvalidPlan(N_("The file is not an Elyra pipeline (doc_type pipeline)."))
    pipelines = data.get("pipelines")
    primary = data.get("primary_pipeline")
    chosen = [p for p in (pipelines if isinstance(pipelines, list) else []) if isinstance(p, dict)]
    chosen = [p for p in chosen if p.get("id") == primary] or chosen[:1]
    if not chosen:
        raise InvalidPlan(N_("The pipeline has no nodes."))
    app_data = chosen[0].get("app_data") or {}
    version = app_data.get("version", 0) if isinstance(app_data, dict) else 0
    if not isinstance(version, int) or version > MAX_ELYRA_VERSION:
        raise InvalidPlan(
            N_("The pipeline was saved by a newer Elyra (version %(version)s) than Balsam reads."),
            params={"version": str(version)},
        )
    raw_nodes = [n for n in chosen[0].get("nodes") or [] if isinstance(n, dict)]
    folder = posixpath.dirname(path)
    parsed = [_node(raw, folder, index) for index, raw in enumerate(raw_nodes)]
    nodes = [n for n in parsed if n is not None]
    if not nodes:
        raise InvalidPlan(N_("The pipeline has no nodes."))
    if len(nodes) > MAX_NODES:
        raise InvalidPlan(
            N_("The pipeline has more than %(most)s nodes."), params={"most": str(MAX_NODES)}
        )
    ids = [n.id for n in nodes]
    if len(set(ids)) != len(ids):
        raise InvalidPlan(N_("Two nodes of the pipeline have the same id."))
    for node in nodes:
        missing = [p for p in node.parents if p not in ids]
        if missing:
            raise InvalidPlan(
                N_("Node %(node)s is linked to a node that is not in the pipeline."),
                params={"node": node.label},
            )
    plan = Plan(path, "pipeline", tuple(nodes))
    plan.order()  # raises on a cycle
    return plan


def _node(raw: dict[str, Any], folder: str, index: int) -> PlanNode | None:
    """One pipeline node; None for what is no execution node (comments, supernodes are
    refused)."""
    if raw.get("type") != "execution_node":
        if raw.get("type") == "super_node":
            raise InvalidPlan(N_("Pipelines with supernodes are not run yet."))
        return None
    op = str(raw.get("op") or "")
    label = _label(raw, index)
    if op not in NODE_OPS:
        raise InvalidPlan(
            N_("Node %(node)s is of a kind Balsam does not run (%(op)s)."),
            params={"node": label, "op": op[:100]},
        )
    params = (raw.get("app_data") or {}).get("component_parameters") or {}
    filename = params.get("filename")
    if not isinstance(filename, str) or not filename:
        raise InvalidPlan(N_("Node %(node)s names no file."), params={"node": label})
    file_path = _inside(folder, filename, label)
    kind = NODE_OPS[op]
    if kind == "notebook" and kind_of_file(file_path) != "notebook":
        raise InvalidPlan(N_("Node %(node)s must name a notebook."), params={"node": label})
    env_names, env = _env_vars(params.get("env_vars"), label)
    node_id = str(raw.get("id") or f"node-{index}")[:100]
    return PlanNode(
        id=node_id,
        key=f"{index + 1:02d}-{_slug(posixpath.basename(file_path))}",
        label=label,
        kind=kind,
        filename=file_path,
        parents=tuple(dict.fromkeys(_links(raw))),
        env_names=env_names,
        env=env,
        dependencies=tuple(_inside(folder, d, label) for d in _strings(params.get("dependencies"))),
        outputs=tuple(_inside(folder, o, label) for o in _strings(params.get("outputs"))),
    )


def _label(raw: dict[str, Any], index: int) -> str:
    ui = (raw.get("app_data") or {}).get("ui_data") or {}
    label = raw.get("label") or (ui.get("label") if isinstance(ui, dict) else None)
    return str(label or f"node {index + 1}")[:200]


def _links(raw: dict[str, Any]) -> list[str]:
    links: list[str] = []
    for port in raw.get("inputs") or []:
        if isinstance(port, dict):
            for link in port.get("links") or []:
                if isinstance(link, dict) and link.get("node_id_ref"):
                    links.append(str(link["node_id_ref"]))
    return links


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str) and v.strip()] if isinstance(value, list) else []


def _env_vars(value: object, label: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """Elyra keeps ``[{"env_var": NAME, "value": ...}]`` (older: ``"NAME=value"``)."""
    names: list[str] = []
    env: dict[str, str] = {}
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            name, text = str(item.get("env_var") or ""), item.get("value")
        elif isinstance(item, str):
            name, _, rest = item.partition("=")
            text = rest if "=" in item else None
        else:
            continue
        name = name.strip()
        if not name:
            continue
        if not _ENV_NAME.fullmatch(name):
            raise InvalidPlan(
                N_("Node %(node)s names an invalid environment variable."), params={"node": label}
            )
        names.append(name)
        if isinstance(text, str) and text != "":
            env[name] = text
    return tuple(dict.fromkeys(names)), env


def _inside(folder: str, relative: str, label: str) -> str:
    """``relative`` (to the pipeline's folder) as a path from the repository root;
    InvalidPlan when it is absolute or leaves the repository."""
    joined = posixpath.normpath(posixpath.join(folder, relative.strip()))
    if (
        relative.startswith("/")
        or joined in (".", "")
        or joined == ".."
        or joined.startswith("../")
        or "\0" in joined
        or "*" in joined
    ):
        raise InvalidPlan(
            N_("Node %(node)s names a path outside the repository: %(path)s"),
            params={"node": label, "path": relative[:200]},
        )
    return joined


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "node"


_PARAMETER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def is_parameter_name(name: str) -> bool:
    """A name both Python and R take as a variable: a letter, then letters, digits
    and ``_`` (at most 64)."""
    return (
        bool(_PARAMETER.fullmatch(name)) and not keyword.iskeyword(name) and name not in _R_RESERVED
    )


_R_RESERVED = frozenset(
    [
        "if",
        "else",
        "repeat",
        "while",
        "function",
        "for",
        "next",
        "break",
        "in",
        "TRUE",
        "FALSE",
        "NULL",
        "Inf",
        "NaN",
        "NA",
        "NA_integer_",
        "NA_real_",
        "NA_character_",
        "NA_complex_",
    ]
)
