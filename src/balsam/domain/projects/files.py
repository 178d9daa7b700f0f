"""Reading a branch's files through git (never through the filesystem)."""

from __future__ import annotations

import builtins
from collections.abc import Iterator

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
        git = self.ctx.providers.git
        top = {e.name for e in git.list_folder(project_id, branch_id, "") if e.type == "File"}
        name = next((n for n in README_NAMES if n in top), None)
        if name is None:
            return None
        data = git.read_file(project_id, branch_id, name)
        return render_markdown(data[:MAX_README_BYTES].decode("utf-8", errors="replace"), web_link)

    def rendered(
        self, actor: Actor, project_id: str, branch_id: str, path: str, *, download_url: str
    ) -> Rendered:
        """The file at ``path`` as inert HTML: Markdown and notebooks rendered with links
        to the web only, other text highlighted. Images, binaries and files over
        ``library_render_max_bytes`` are not read here (kind ``image``/``binary``):
        fetch those with :meth:`open`."""
        self.branches.get(actor, project_id, branch_id)
        size, chunks = self.ctx.providers.git.open_file(project_id, branch_id, path)
        lower = path.casefold()
        if lower.endswith(_IMAGES) or size > self.ctx.settings.library_render_max_bytes:
            kind: RenderKind = "image" if lower.endswith(_IMAGES) else "binary"
            return Rendered(path=path, kind=kind, html="", download_url=download_url)
        text = as_text(b"".join(chunks))
        if text is None:
            return Rendered(path=path, kind="binary", html="", download_url=download_url)
        html: str | None = None
        kind = "code"
        if lower.endswith((".md", ".markdown")):
            html, kind = render_markdown(text, web_link), "markdown"
        elif lower.endswith(".ipynb"):
            html, kind = render_notebook(text, web_link), "notebook"
        if html is None:
            html, kind = highlight_code(text, lexer_for_file(path)), "code"
        return Rendered(path=path, kind=kind, html=html, download_url=download_url)

    def open(
        self, actor: Actor, project_id: str, branch_id: str, path: str
    ) -> tuple[int, Iterator[bytes]]:
        """The file's size and its content in chunks (streamed, never all in memory)."""
        self.branches.get(actor, project_id, branch_id)
        return self.ctx.providers.git.open_file(project_id, branch_id, path)
