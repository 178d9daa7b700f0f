"""Users of the organisation's identity provider (OpenID Connect): who a sign-in or a
provider's token is, who is an administrator, and whose project groups the provider
may read.

Contract:
* A provider account is (issuer, ``sub``), linked to one Balsam user at its first
  sign-in or first API call, for good. Its user name is made then from the
  ``oidc.username_claim`` (``preferred_username``): Swedish and other letters written
  in ASCII (å, ä → a; ö → o; é → e), lower case, any other character '-', at most 64;
  a name that is taken — a local account's, or another provider account's — gets
  ``-2``, ``-3``, … An existing account is never taken over by its name.
* Display name and e-mail follow the provider's claims at every sign-in.
* With ``oidc.admin_groups`` set, admin rights of provider users follow the groups
  claim at every sign-in, and on every API call whose token carries the claim (a token
  without it changes nothing). Project groups (``balsam-grp_…``) never count, so a
  project's name can never make its owner an administrator. Local accounts are left
  alone.
* Project access is decided by Balsam's memberships only; a ``groups`` claim that
  lists a project's group grants nothing.
* A deactivated user cannot sign in, nor use a provider token.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from unidecode import unidecode

from balsam.context import AppContext
from balsam.db.models import ExternalIdentity, LoginSession, Membership, User, utcnow
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import USERNAME_RE, Actor
from balsam.domain.identity.values import check_display_name, check_email
from balsam.domain.projects.members import MemberService
from balsam.domain.projects.schemas import MemberAdd, Role
from balsam.domain.projects.service import auth_group
from balsam.errors import N_, BalsamError, Forbidden, NotFound, Unauthenticated
from balsam.providers.identity.base import (
    Claims,
    IdentityProvider,
    ProviderUnavailable,
    TokenRefused,
    client_of,
)
from balsam.settings import PROJECT_GROUP_PREFIX, OidcSettings

log = logging.getLogger(__name__)
_NOT_NAME = re.compile(r"[^a-z0-9._-]+")
#: How often an account's last use is written down.
LAST_SEEN_EVERY = timedelta(minutes=1)


def username_from(value: str) -> str:
    """A Balsam user name made from a provider's user name (the module's rule), before
    collisions: "Åsa.Öberg" → "asa.oberg"; "" when nothing usable is left."""
    name = _NOT_NAME.sub("-", unidecode(value).lower())
    return name.lstrip("._-")[:64].rstrip("-")


@dataclass(frozen=True)
class ProviderAccount:
    """What a token says of its user."""

    subject: str
    username: str
    display_name: str
    email: str
    #: None when the token has no groups claim (nothing to decide from).
    groups: tuple[str, ...] | None


@dataclass(frozen=True)
class GroupsReader:
    """Who asks for a user's project groups: a signed-in user, or the provider's
    service account (a client listed in ``oidc.groups_clients``)."""

    actor: Actor | None = None
    service_client: str | None = None


def account_of(claims: Claims, settings: OidcSettings) -> ProviderAccount:
    """The account a token's claims describe (Unauthenticated without ``sub``)."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise Unauthenticated(N_("The identity provider's token names no user."))
    groups = claims.get(settings.groups_claim)
    return ProviderAccount(
        subject=subject,
        username=_string(claims.get(settings.username_claim)),
        display_name=_checked(check_display_name, _string(claims.get("name"))),
        email=(
            ""
            if claims.get("email_verified") is False
            else _checked(check_email, _string(claims.get("email")))
        ),
        groups=(
            tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else None
        ),
    )


def is_service_account(claims: Claims, account: ProviderAccount) -> bool:
    """Whether a token is a client's own (client credentials), not a person's: its
    subject is its client (oidc-provider), or its user is Keycloak's service account
    of the client (``service-account-<client>``). Such tokens are no Balsam user."""
    client = client_of(claims)
    return (client is not None and account.subject == client) or account.username.startswith(
        "service-account-"
    )


def _string(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _checked(check: Callable[[str], str], value: str) -> str:
    """``value`` if ``check`` accepts it, else "" (a provider's odd name is dropped,
    not an error: the sign-in goes on)."""
    try:
        return check(value)
    except ValueError:
        return ""


class ExternalIdentityService:
    """Provider accounts ↔ Balsam users (see the module's contract)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings.oidc
        provider = ctx.providers.identity
        if provider is None or not self.settings.enabled:
            raise NotFound(N_("Sign-in with an identity provider is not configured."))
        self.provider: IdentityProvider = provider

    # -- sign-in -----------------------------------------------------------------------

    def sign_in(self, account: ProviderAccount, *, address: str, request_id: str) -> User:
        """The user of a verified sign-in (created at the first), with name, e-mail and
        admin rights brought up to date; the login is audited."""
        user = self._user(account, update_profile=True, request_id=request_id)
        self.ctx.audit.record(
            AuditRecord(
                actor=user.username,
                action="auth.login",
                target=f"user:{user.username}",
                request_id=request_id,
                details={"address": address, "via": "oidc"},
            )
        )
        return user

    def refuse_sign_in(self, why: str, *, address: str, request_id: str) -> None:
        """Audit a sign-in the provider's answer did not prove (the reason, never a token)."""
        self.ctx.audit.record(
            AuditRecord(
                actor="anonymous",
                action="auth.login",
                target="oidc",
                outcome="failure",
                request_id=request_id,
                details={"address": address, "via": "oidc", "reason": why[:200]},
            )
        )

    def log_out(self, logout_token: str, *, request_id: str) -> list[str]:
        """End the login sessions begun through the provider that its back-channel
        logout token names (its ``sub``'s, or its session ``sid``'s, or both: those of
        that user in that session); the user names whose sessions ended (for the proxy
        to forget them at once). TokenRefused for a token that does not prove it."""
        claims = self.provider.verify_logout_token(logout_token)
        sub, sid = claims.get("sub"), claims.get("sid")
        where = [LoginSession.via == "oidc"]
        with self.ctx.sessions() as session, session.begin():
            if isinstance(sub, str):
                user_id = session.scalar(
                    select(ExternalIdentity.user_id).where(*self._link_of(sub))
                )
                if user_id is None:
                    return []
                where.append(LoginSession.user_id == user_id)
            if isinstance(sid, str):
                where.append(LoginSession.provider_sid == sid)
            ended = session.execute(
                select(LoginSession.id_hash, User.username).join(User).where(*where)
            ).all()
            if ended:
                session.execute(
                    delete(LoginSession).where(LoginSession.id_hash.in_([e[0] for e in ended]))
                )
        names = sorted({username for _hash, username in ended})
        for username in names:
            self.ctx.audit.record(
                AuditRecord(
                    actor="identity-provider",
                    action="auth.logout",
                    target=f"user:{username}",
                    request_id=request_id,
                    details={"via": "oidc back-channel"},
                )
            )
        return names

    # -- bearer tokens ------------------------------------------------------------------

    def token_claims(self, token: str, *, service: bool = False) -> Claims:
        """A provider access token's claims, checked (signature, issuer, audience,
        times, client: ``oidc.authorized_parties``, and for the groups endpoint
        (``service``) the ``oidc.groups_clients`` too); Unauthenticated naming the
        failed check otherwise."""
        parties = self.settings.authorized_parties
        if parties and service:
            parties = [*parties, *self.settings.groups_clients]
        try:
            return self.provider.verify_access_token(
                token, audiences=self.settings.audiences, parties=parties
            )
        except TokenRefused as refused:
            raise Unauthenticated(
                N_("The identity provider's token was refused: %(why)s."),
                params={"why": str(refused)},
            ) from None
        except ProviderUnavailable:
            raise Unauthenticated(
                N_("The identity provider cannot be reached to check the token.")
            ) from None

    def user_for_token(self, token: str, claims: Claims, *, request_id: str) -> User:
        """The user a checked access token is of (created at its first use; the
        provider's userinfo is asked when the token lacks the user name)."""
        account = account_of(claims, self.settings)
        if is_service_account(claims, account):
            raise Unauthenticated(N_("The token is a service account's, not a person's."))
        if not account.username and self._linked(account.subject) is None:
            try:
                info = dict(self.provider.userinfo(token))
            except ProviderUnavailable:
                info = {}
            if info.get("sub") == account.subject:
                account = account_of({**info, **claims}, self.settings)
            if not account.username:  # nothing says who: no user is made for it
                raise Unauthenticated(N_("The identity provider's token names no user."))
        return self._user(account, update_profile=False, request_id=request_id)

    # -- users ------------------------------------------------------------------------

    def _link_of(self, subject: str) -> tuple[ColumnElement[bool], ...]:
        """Where the account link of the provider's ``subject`` is."""
        return (
            ExternalIdentity.issuer == self.provider.issuer,
            ExternalIdentity.subject == subject,
        )

    def _linked(self, subject: str) -> int | None:
        with self.ctx.sessions() as session:
            return session.scalar(select(ExternalIdentity.user_id).where(*self._link_of(subject)))

    def _user(self, account: ProviderAccount, *, update_profile: bool, request_id: str) -> User:
        for _attempt in range(3):  # a concurrent first sign-in took the name or the link
            try:
                user, fresh = self._user_once(account, update_profile, request_id)
            except IntegrityError:
                continue
            if fresh and account.groups is not None and self.settings.project_roles:
                rules = ProjectRoleRules(self.ctx, self.settings)
                # Tokens only take away: one still valid from before a group was left
                # must not give back what a sign-in took.
                rules.apply(user.username, account.groups, grant=update_profile)
            return user
        raise Unauthenticated(N_("Signing in failed; try again."))

    def _user_once(
        self, account: ProviderAccount, update_profile: bool, request_id: str
    ) -> tuple[User, bool]:
        """The account's user, and whether its project roles are due (a sign-in, a
        first use, or a last use noted more than a minute ago)."""
        created = False
        fresh = update_profile
        changes: dict[str, object] = {}
        with self.ctx.sessions() as session, session.begin():
            link = session.scalar(select(ExternalIdentity).where(*self._link_of(account.subject)))
            if link is None:
                user = User(
                    username=_free_username(session, account),
                    display_name=account.display_name or account.username or "",
                    email=account.email,
                    password_hash=None,
                    is_admin=False,
                )
                session.add(user)
                session.flush()
                session.add(
                    ExternalIdentity(
                        issuer=self.provider.issuer,
                        subject=account.subject,
                        provider_username=account.username[:255] or None,
                        user_id=user.id,
                    )
                )
                created = True
            else:
                user = session.get_one(User, link.user_id)
                now = utcnow()
                if now - link.last_seen_at > LAST_SEEN_EVERY:  # not a write per API call
                    link.last_seen_at = now
                    fresh = True
                if account.username and link.provider_username != account.username[:255]:
                    link.provider_username = account.username[:255]
                if update_profile:
                    if account.display_name and user.display_name != account.display_name:
                        user.display_name = account.display_name
                    if account.email and user.email != account.email:
                        user.email = account.email
            if not user.is_active:
                raise Unauthenticated(N_("The account is deactivated."))
            admin = self._admin_by_groups(account.groups)
            if admin is not None and admin != user.is_admin:
                user.is_admin = admin
                changes["isAdmin"] = admin
            session.flush()
            session.expunge(user)
        if created:
            self._audit(user, "user.create", request_id, {"via": "oidc", "isAdmin": user.is_admin})
        elif changes:
            self._audit(user, "user.update", request_id, {**changes, "by": "provider groups"})
        return user, fresh or created

    def _admin_by_groups(self, groups: tuple[str, ...] | None) -> bool | None:
        """Admin rights by ``oidc.admin_groups``; None when they decide nothing."""
        if not self.settings.admin_groups or groups is None:
            return None
        wanted = set(self.settings.admin_groups)
        return any(g in wanted for g in groups if not g.startswith(PROJECT_GROUP_PREFIX))

    def _audit(self, user: User, action: str, request_id: str, details: dict[str, object]) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor="identity-provider",
                action=action,
                target=f"user:{user.username}",
                request_id=request_id,
                details=details,
            )
        )

    # -- project groups for the provider -------------------------------------------------

    def service_client(self, claims: Claims) -> str | None:
        """The client id when a checked token is the provider's service account listed
        in ``oidc.groups_clients``; None for any other token."""
        client = client_of(claims)
        return client if client in self.settings.groups_clients else None


def project_groups(ctx: AppContext, reader: GroupsReader, username: str) -> list[str]:
    """The ``authGroup`` of every project ``username`` is a member of, sorted. Read by
    the provider's service account, an administrator, or the user themself; Forbidden
    for anyone else (who does not even learn whether the user exists). The service
    account gets no groups for a name Balsam does not know yet: the provider asks at a
    person's very first sign-in, before Balsam has made their user."""
    actor = reader.actor
    allowed = reader.service_client is not None or (
        actor is not None and (actor.is_admin or actor.username == username)
    )
    if not allowed:
        raise Forbidden(N_("Only the identity provider's service account reads this."))
    with ctx.sessions() as session:
        if reader.service_client is not None:
            # The provider asks with its own user name: its account's user, whatever
            # Balsam named them. A name two of its accounts claim, or none (a person
            # Balsam has not met yet), has no groups.
            users = session.scalars(
                select(ExternalIdentity.user_id).where(
                    ExternalIdentity.issuer == ctx.settings.oidc.issuer,
                    ExternalIdentity.provider_username == username,
                )
            ).all()
            if len(users) != 1:
                return []
            user_id: int | None = users[0]
        else:
            user_id = session.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            raise NotFound(N_("No user '%(name)s'."), params={"name": username})
        ids = session.scalars(select(Membership.project_id).where(Membership.user_id == user_id))
        return sorted(auth_group(project_id) for project_id in ids)


def _free_username(session: Session, account: ProviderAccount) -> str:
    """The first free name of ``base``, ``base-2``, ``base-3``, … (the module's rule)."""
    base = username_from(account.username) or "user"
    for number in range(1, 10_000):
        suffix = "" if number == 1 else f"-{number}"
        name = base[: 64 - len(suffix)] + suffix
        if not USERNAME_RE.fullmatch(name):
            continue
        if session.scalar(select(User.id).where(User.username == name)) is None:
            return name
    raise Unauthenticated(N_("No free user name for this account; ask an administrator."))


#: Who changes memberships by the rules (an administrator for the project rules; the
#: audit trail names it).
RULES_ACTOR = Actor(user_id=0, username="identity-provider", is_admin=True)
_RANK = {"member": 1, "owner": 2}


class ProjectRoleRules:
    """``oidc.project_roles``: project roles from the provider's groups (see the setting).

    Memberships a rule made carry its group (``via_group``); only those change: they end
    when the user is in none of the rule's groups any more (through the member service:
    keys revoked, workspaces locked, never the project's last owner), and follow the
    rule's role. A failure on one project (a rule naming a deleted project, the last
    owner) is logged and does not stop the sign-in."""

    def __init__(self, ctx: AppContext, settings: OidcSettings) -> None:
        self.ctx = ctx
        self.rules = settings.project_roles

    def wanted(self, groups: tuple[str, ...]) -> dict[str, tuple[Role, str]]:
        """Project id → (role, group) the user's groups give (the highest role)."""
        mine = {g for g in groups if not g.startswith(PROJECT_GROUP_PREFIX)}
        wanted: dict[str, tuple[Role, str]] = {}
        for rule in self.rules:
            if rule.group in mine:
                held = wanted.get(rule.project)
                if held is None or _RANK[rule.role] > _RANK[held[0]]:
                    wanted[rule.project] = (rule.role, rule.group)
        return wanted

    def apply(self, username: str, groups: tuple[str, ...], *, grant: bool = True) -> None:
        """Bring the memberships rules made for ``username`` in line with ``groups``
        (only ending and lowering them unless ``grant``)."""
        wanted = self.wanted(groups)
        with self.ctx.sessions() as session:
            held = {
                m.project_id: (m.role, m.via_group)
                for m in session.scalars(
                    select(Membership).join(User).where(User.username == username)
                )
            }
        members = MemberService(self.ctx)
        for project_id, (role, group) in wanted.items():
            current = held.get(project_id)
            if not grant and (current is None or _RANK[role] > _RANK[current[0]]):
                continue
            try:
                if current is None:
                    data = MemberAdd(username=username, role=role)
                    members.add(RULES_ACTOR, project_id, data, via_group=group)
                elif current[1] is not None and current[0] != role:
                    members.change_role(RULES_ACTOR, project_id, username, role)
            except BalsamError as refused:
                log.warning("project role rule for %s in %s: %s", username, project_id, refused)
        for project_id, (_role, via_group) in held.items():
            if via_group is not None and project_id not in wanted:
                try:
                    members.remove(RULES_ACTOR, project_id, username)
                except BalsamError as refused:
                    log.warning(
                        "ending %s's rule membership of %s: %s", username, project_id, refused
                    )
