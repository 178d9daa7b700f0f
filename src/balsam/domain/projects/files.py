"""Reading a branch's files through git (never through the filesystem)."""

from __future__ import annotations

import builtins

from balsam.context import AppContext
from balsam.domain.identity.service import Actor
from balsam.domain.library.render import (
    as_text,
    highlight_code,
    lexer_for_file,
    render_markdown,
    render_notebook,
    web_link,
)
from balsam.domain.library.schemas import Rendered, RenderKind
from balsam.domain.projects.branches import BranchService
from balsam.domain.projects.naming import decode_file_id
from balsam.errors import NotFound
from balsam.providers.git.base import TreeEntry

#: What a README at the top of a branch may be called, in the order looked for.
README_NAMES = ("README.md", "readme.md", "Readme.md", "README.markdown", "README")
MAX_README_BYTES = 512 * 1024
_IMAGES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")


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

    def rendered(
        self, actor: Actor, project_id: str, branch_id: str, path: str, *, download_url: str
    ) -> tuple[Rendered, bytes]:
        """The file at ``path`` as inert HTML (Markdown and notebooks rendered with
        links to the web only, other text highlighted; images, binaries and files
        over the size limit offered for download), and its bytes."""
        self.branches.get(actor, project_id, branch_id)
        data = self.ctx.providers.git.read_file(project_id, branch_id, path)
        lower = path.casefold()
        if lower.endswith(_IMAGES):
            return Rendered(path=path, kind="image", html="", download_url=download_url), data
        text = as_text(data) if len(data) <= self.ctx.settings.library_render_max_bytes else None
        if text is None:
            return Rendered(path=path, kind="binary", html="", download_url=download_url), data
        html: str | None = None
        kind: RenderKind = "code"
        if lower.endswith((".md", ".markdown")):
            html, kind = render_markdown(text, web_link), "markdown"
        elif lower.endswith(".ipynb"):
            html, kind = render_notebook(text, web_link), "notebook"
        if html is None:
            html, kind = highlight_code(text, lexer_for_file(path)), "code"
        return Rendered(path=path, kind=kind, html=html, download_url=download_url), data
