"""What the project page's *Data* tab shows: one folder of the project's bucket, in the
branch's area (``<branch>/``) or the temporary one (``tmp/``), a page at a time, and
the addresses of the data pages (:mod:`balsam.web.pages.data`) and of the API calls
the pages link to or the script calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from balsam.context import AppContext
from balsam.domain.data.schemas import DataItem, DataListing
from balsam.domain.data.service import TMP, DataService
from balsam.domain.identity.service import Actor
from balsam.errors import N_, NotFound

#: Entries on one page of a folder (the API's ``after`` continues).
DATA_PAGE = 200


@dataclass
class DataRow:
    """One entry of a folder: a folder (``item`` None) or an object."""

    path: str
    name: str
    item: DataItem | None = None


@dataclass
class DataFolder:
    """A folder of the *Data* tab: its path (ending in '/'), its area (the branch's
    or ``tmp``), its breadcrumbs, this page's rows, and where the next page starts."""

    prefix: str
    area: str
    crumbs: list[tuple[str, str]] = field(default_factory=list)
    rows: list[DataRow] = field(default_factory=list)
    after: str = ""
    next_after: str | None = None

    @property
    def is_tmp(self) -> bool:
        return self.area == TMP


def area_of(branch: str, path: str) -> str:
    """The area ``path`` lies in: the branch's (``<branch>/``) or ``tmp/``; NotFound for
    any other (another branch's data is shown on that branch)."""
    for area in (f"{branch}/", TMP):
        if path == area[:-1] or path.startswith(area):
            return area
    raise NotFound(N_("No such folder in this branch's data."))


def load_folder(
    ctx: AppContext, actor: Actor, project_id: str, branch: str, folder: str, after: str = ""
) -> DataFolder:
    """The folder ``folder`` (no trailing '/'; '' for the branch's own) as the tab shows
    it; the service decides who may see it (NotFound for others) and which paths are
    usable (InvalidInput)."""
    prefix = (folder.strip("/") or branch) + "/"
    area = area_of(branch, prefix)
    listing = DataService(ctx).list(actor, project_id, prefix, after=after, limit=DATA_PAGE)
    return DataFolder(
        prefix=prefix,
        area=area,
        crumbs=crumbs(area, prefix),
        rows=_rows(listing),
        after=after,
        next_after=listing.next_after,
    )


def crumbs(area: str, prefix: str) -> list[tuple[str, str]]:
    """``(name, folder path)`` of each folder from the area's top (one, even for a
    branch whose name has a '/') down to ``prefix``."""
    top = area.rstrip("/")
    found = [(top, top)]
    for part in prefix[len(area) :].split("/"):
        if part:
            found.append((part, f"{found[-1][1]}/{part}"))
    return found


def _rows(listing: DataListing) -> list[DataRow]:
    folders = [DataRow(p, p.rstrip("/").rsplit("/", 1)[-1]) for p in listing.prefixes]
    files = [DataRow(i.path, i.path.rsplit("/", 1)[-1], i) for i in listing.items]
    return folders + files


def parent_folder(path: str) -> str:
    """The folder holding ``path`` (an object or a folder), without a trailing '/'."""
    return path.rstrip("/").rsplit("/", 1)[0] if "/" in path.rstrip("/") else ""


def api_data_url(project_id: str, path: str, version_id: str | None = None) -> str:
    """The API's address of ``path`` (a download: always an attachment)."""
    url = f"/api/v1/projects/{quote(project_id, safe='')}/data/{quote(path, safe='/')}"
    return url + (f"?{urlencode({'versionId': version_id})}" if version_id else "")


def data_page_url(project_id: str, page: str, branch: str, path: str = "") -> str:
    """A data page (``file``, ``delete``, ``usage``, ``folder``) of the project."""
    query = {"branch": branch} | ({"path": path} if path else {})
    return f"/projects/{quote(project_id, safe='')}/data/{page}?" + urlencode(query)
