"""What a git push may change, and how the database follows what it changed.

git enforces the rules itself, in a ``pre-receive`` hook
(:mod:`balsam.domain.projects.push_hook`), so no client can go around them:

* only ``refs/heads/<name>`` and ``refs/tags/<name>`` may be pushed, and
  ``<name>`` follows the branch API's naming rule (no ``feat/x``, ``-x``,
  ``HEAD``, 200 characters, ``refs/pull/*``);
* the default branch is never deleted;
* the default branch moves forward only, unless the pusher owns the project
  (or is an administrator): a force-push over it is refused;
* only owners delete branches (as in the API), and only owners move or delete
  tags (members may create them).

After a push, the ``post-receive`` hook lists the refs git really updated, and
:meth:`PushService.apply` makes the project's branch list agree with them and
audits each update with ref, old and new commit. The database follows git,
never the other way round: :meth:`PushService.reconcile` repairs any
difference left (a push whose follow-up did not run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select

from balsam.context import AppContext
from balsam.db.models import Branch, Project
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor
from balsam.domain.journal import Journal
from balsam.domain.projects import naming
from balsam.domain.projects.access import role_of
from balsam.errors import BalsamError, InvalidInput

log = logging.getLogger(__name__)

ZERO = "0" * 40
_ENV_DEFAULT = "BALSAM_PUSH_DEFAULT_BRANCH"
_ENV_OWNER = "BALSAM_PUSH_BY_OWNER"


@dataclass(frozen=True)
class RefUpdate:
    """One line git hands a receive hook: ``<old> <new> <ref>``."""

    old: str
    new: str
    ref: str
    #: The update was not a fast-forward (known after the push, from post-receive).
    forced: bool = False

    @property
    def deletes(self) -> bool:
        return self.new.strip("0") == ""

    @property
    def creates(self) -> bool:
        return self.old.strip("0") == ""

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None


def parse_updates(text: str) -> list[RefUpdate]:
    """The updates of a hook's standard input, or of the push log (which adds a
    fourth field, ``1`` for a forced update); malformed lines are skipped."""
    updates = []
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) in (3, 4):
            forced = len(parts) == 4 and parts[3] == "1"
            updates.append(RefUpdate(parts[0], parts[1], parts[2], forced))
    return updates


def log_line(update: RefUpdate) -> str:
    """``update`` as a line of the push log (see ``parse_updates``)."""
    return f"{update.old} {update.new} {update.ref} {int(update.forced)}\n"


@dataclass(frozen=True)
class PushPolicy:
    """What one pusher may do to one repository."""

    default_branch: str
    by_owner: bool

    def environment(self) -> dict[str, str]:
        """The variables that carry the policy to the hook."""
        return {_ENV_DEFAULT: self.default_branch, _ENV_OWNER: "1" if self.by_owner else "0"}

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> PushPolicy | None:
        """The policy the hook was given, or None (a push outside Balsam's server)."""
        default = env.get(_ENV_DEFAULT)
        return None if not default else cls(default, env.get(_ENV_OWNER) == "1")

    def refusal(
        self,
        update: RefUpdate,
        is_ancestor: Callable[[str, str], bool],
        ref_exists: Callable[[str], bool] = lambda ref: False,
    ) -> str | None:
        """Why ``update`` is refused, or None if it may go ahead. ``is_ancestor(a, b)``
        tells whether commit ``a`` is an ancestor of ``b``; ``ref_exists(ref)``
        whether the repository has that ref now."""
        kind, _, name = update.ref.partition("/")[2].partition("/")
        if not update.ref.startswith("refs/") or kind not in ("heads", "tags"):
            return "only branches (refs/heads/) and tags (refs/tags/) may be pushed"
        try:
            naming.validate_branch_name(name)
        except InvalidInput as exc:
            return exc.message
        # A tag and a branch of one name make "main" ambiguous in every clone (git
        # picks the tag): neither may be created beside the other.
        twin = f"refs/{'heads' if kind == 'tags' else 'tags'}/{name}"
        if update.creates and ref_exists(twin):
            return f"a {'branch' if kind == 'tags' else 'tag'} named '{name}' exists"
        if kind == "tags":  # a tag names a release: made by members, changed by owners
            if update.creates or self.by_owner:
                return None
            return "only project owners can move or delete tags"
        if update.deletes:
            if name == self.default_branch:
                return "the default branch cannot be deleted"
            return None if self.by_owner else "only project owners can delete branches"
        if (
            name == self.default_branch
            and not update.creates
            and not self.by_owner
            and not is_ancestor(update.old, update.new)
        ):
            return (
                "only project owners can rewrite the default branch "
                "(a non-fast-forward push); pull and merge instead"
            )
        return None


class PushService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def policy(self, actor: Actor, project_id: str) -> PushPolicy | None:
        """The push rules for ``actor`` on the project (None: no such project)."""
        with self.ctx.sessions() as session:
            project = session.get(Project, project_id)
            if project is None:
                return None
            owner = actor.is_admin or role_of(session, actor, project_id) == "owner"
            return PushPolicy(project.default_branch, owner)

    def apply(self, actor: Actor, project_id: str, updates: Iterable[RefUpdate]) -> None:
        """Audit the push with the updates git made (none: it was refused, or had
        nothing to change; outcome ``failure``), then make the branch list follow git."""
        done = list(updates)
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username[:64],
                action="git.push",
                target=f"git:{project_id}",
                project_id=project_id,
                request_id=actor.request_id,
                outcome="success" if done else "failure",
                details={
                    "updates": [
                        {"ref": u.ref, "old": u.old, "new": u.new, "forced": u.forced}
                        for u in done[:100]
                    ]
                },
            )
        )
        if done:
            self.reconcile(project_id, actor)

    def reconcile(self, project_id: str, actor: Actor) -> None:
        """Add the branches git has and the database lacks, and drop the rows of
        branches git no longer has (never the default branch's row); audit each. A
        branch deleted by push has its data retired as one deleted through the API
        (kept as versions for the retention period), journaled: if storage is down, the
        repair retires it later."""
        git_branches = set(self.ctx.providers.git.list_branches(project_id))
        added: list[str] = []
        dropped: list[str] = []
        with self.ctx.sessions() as session, session.begin():
            project = session.get(Project, project_id)
            if project is None:
                return
            bucket = project.bucket
            rows = {
                b.id: b
                for b in session.scalars(select(Branch).where(Branch.project_id == project_id))
            }
            for name in sorted(git_branches - rows.keys()):
                if _valid(name):
                    session.add(Branch(project_id=project_id, id=name, description=""))
                    added.append(name)
            for name, row in rows.items():
                if name not in git_branches and not row.is_default:
                    session.delete(row)
                    dropped.append(name)
        for name in dropped:
            self._retire(project_id, bucket, name, actor)
        for action, names in (("branch.create", added), ("branch.delete", dropped)):
            for name in names:
                self.ctx.audit.record(
                    AuditRecord(
                        actor=actor.username[:64],
                        action=action,
                        target=f"project:{project_id}/branch:{name}",
                        project_id=project_id,
                        request_id=actor.request_id,
                        details={"by": "git push"},
                    )
                )

    def _retire(self, project_id: str, bucket: str, branch: str, actor: Actor) -> None:
        """Retire a branch's data prefix after git deleted the branch (the push is
        done: this never fails it; a failure stays journaled for the repair)."""
        try:
            with Journal(self.ctx).running(
                "branch.delete", project_id, actor, branch, after_the_fact=True
            ):
                self.ctx.providers.storage.retire_prefix(bucket, f"{branch}/")
        except BalsamError as exc:
            log.warning(
                "branch %s of %s deleted by push: data not retired yet: %s",
                branch,
                project_id,
                exc.message,
            )


def _valid(name: str) -> bool:
    try:
        naming.validate_branch_name(name)
    except InvalidInput:
        return False
    return True
