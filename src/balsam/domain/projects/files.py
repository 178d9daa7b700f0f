"""Reading a branch's files through git (never through the filesystem)."""

from __future__ import annotations

from balsam.context import AppContext
from balsam.domain.identity.service import Actor
from balsam.domain.projects.branches import BranchService
from balsam.domain.projects.naming import decode_file_id
from balsam.providers.git.base import TreeEntry


class FileService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.branches = BranchService(ctx)

    def list(self, actor: Actor, project_id: str, branch_id: str) -> list[TreeEntry]:
        self.branches.get(actor, project_id, branch_id)
        return self.ctx.providers.git.list_tree(project_id, branch_id)

    def read(
        self, actor: Actor, project_id: str, branch_id: str, file_id: str
    ) -> tuple[str, bytes]:
        """``(path, content)`` of the file the id names; NotFound for anything else."""
        self.branches.get(actor, project_id, branch_id)
        path = decode_file_id(file_id)
        return path, self.ctx.providers.git.read_file(project_id, branch_id, path)
