"""Branch marker objects: upstream creates one per branch, so that a branch's data
prefix exists (and lists) from the start."""

from __future__ import annotations


def marker_key(branch: str) -> str:
    """Upstream's per-branch marker object: the prefix exists from the start."""
    return f"{branch}/readme.txt"


def marker_body(project_name: str, branch: str) -> bytes:
    return f"Data of project '{project_name}', branch '{branch}'.\n".encode()
