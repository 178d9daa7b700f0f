"""Reading a branch's files through git (never through the filesystem)."""

from __future__ import annotations

import builtins

from balsam.context import AppContext
from balsam.domain.identity.service import Actor
from balsam.domain.library.render import render_markdown, web_link
from balsam.domain.projects.branches import BranchService
from balsam.domain.projects.naming import decode_file_id
from balsam.errors import NotFound
from balsam.providers.git.base import TreeEntry

#: What a README at the top of a branch may be called, in the order looked for.
README_NAMES = ("README.md", "readme.md", "Readme.md", "README.markdown", "README")
MAX_README_BYTES = 512 * 1024


class FileService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.branches = BranchService(ctx)

    def list(self, actor: Actor, project_id: str, branch_id: str) -> list[TreeEntry]:
        self.branches.get(actor, project_id, branch_id)
        return self.ctx.providers.git.list_tree(project_id, branch_id)

    def list_folder(
        self, actor: Actor, project_id: str, branch_id: str, folder: str
    ) -> builtins.list[TreeEntry]:
        """What is directly in ``folder`` (``""``: the top); NotFound if no folder."""
        self.branches.get(actor, project_id, branch_id)
        return self.ctx.providers.git.list_folder(project_id, branch_id, folder)

    def read(
        self, actor: Actor, project_id: str, branch_id: str, file_id: str
    ) -> tuple[str, bytes]:
        """``(path, content)`` of the file the id names; NotFound for anything else."""
        self.branches.get(actor, project_id, branch_id)
        path = decode_file_id(file_id)
        return path, self.ctx.providers.git.read_file(project_id, branch_id, path)

    def readme_html(self, actor: Actor, project_id: str, branch_id: str) -> str | None:
        """The branch's top-level README rendered as inert HTML (Markdown, links to
        the web only: no script, no relative paths), or None when it has none."""
        self.branches.get(actor, project_id, branch_id)
        for name in README_NAMES:
            try:
                data = self.ctx.providers.git.read_file(project_id, branch_id, name)
            except NotFound:
                continue
            text = data[:MAX_README_BYTES].decode("utf-8", errors="replace")
            return render_markdown(text, web_link)
        return None
