"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from balsam.errors import N_, InvalidInput

_HASHER = PasswordHasher()  # argon2id with the library's current defaults
#: Verified against when a user does not exist, so timing does not tell.
_DUMMY_HASH = _HASHER.hash("balsam-dummy-password-for-timing")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-ish time check; a missing hash still costs one verification."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("balsam.data").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


#: Each problem as a sentence of its own (a template: ``%(min)s`` is the minimum).
_SENTENCES = {
    "must be at least {min} characters long": N_(
        "The password must be at least %(min)s characters long."
    ),
    "must be at most 1024 characters long": N_(
        "The password must be at most 1024 characters long."
    ),
    "is too common": N_("The password is too common; choose a longer, rarer one."),
    "must not contain the username": N_("The password must not contain the username."),
}


def check_password_policy(password: str, *, username: str, min_length: int) -> None:
    """Raise InvalidInput unless the password is long and not a known common one."""
    problems: list[str] = []
    if len(password) < min_length:
        problems.append("must be at least {min} characters long")
    if len(password) > 1024:
        problems.append("must be at most 1024 characters long")
    folded = password.casefold()
    if folded in common_passwords() or len(set(folded)) <= 2:
        problems.append("is too common")
    if username and username.casefold() in folded:
        problems.append("must not contain the username")
    if problems:
        raise InvalidInput(
            # The first problem, in words the portal translates; the API also lists all.
            _SENTENCES[problems[0]],
            params={"min": min_length},
            details={
                "errors": [
                    {
                        "loc": ["password"],
                        "msg": p.format(min=min_length),
                        "type": "password_policy",
                    }
                    for p in problems
                ]
            },
        )
