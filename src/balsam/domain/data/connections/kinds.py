"""The three kinds of connection: which settings each keeps in clear, which field is
its secret, and the environment variables a workspace gets from it.

Variable names are ``BALSAM_CONN_<NAME>_<FIELD>``; no field of one kind is another
field with a prefix (``ACCESS_KEY_ID`` is not ``ACCESS`` + ``KEY_ID``), so two
connections' variables never share a name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from balsam.domain.data.connections.schemas import (
    HttpCreate,
    PostgresqlCreate,
    S3Create,
)
from balsam.errors import N_, InvalidInput

PREFIX = "BALSAM_CONN_"
NAME = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
#: Host names and addresses libpq and URLs take: no '/', ',' or spaces (a '/' would
#: make libpq use a local socket folder).
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:-]{0,252}")
FIELDS: Mapping[str, tuple[str, ...]] = {
    "postgresql": ("HOST", "PORT", "DATABASE", "USER", "PASSWORD", "DSN"),
    "s3": ("ENDPOINT", "BUCKET", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "REGION"),
    "http": ("URL", "TOKEN"),
}

Create = PostgresqlCreate | S3Create | HttpCreate


def normal_name(name: str) -> str:
    """``name`` upper-cased if it is a usable connection name; InvalidInput otherwise.
    ASCII only: some other letters upper-case to ASCII ones (dotless i → 'I')."""
    upper = name.upper()
    if not (name.isascii() and NAME.fullmatch(upper)):
        raise InvalidInput(
            N_(
                "A connection's name is 1 to 40 letters A-Z, digits and '_', "
                "starting with a letter."
            ),
            details={"field": "name"},
        )
    return upper


def variables(name: str, kind: str) -> list[str]:
    return [f"{PREFIX}{name}_{field}" for field in FIELDS.get(kind, ())]


def split(data: Create) -> tuple[dict[str, str], str]:
    """The settings kept in clear (checked) and the secret of a new connection."""
    if isinstance(data, PostgresqlCreate):
        host = _text(data.host, "host")
        if not _HOST.fullmatch(host):
            raise _invalid("host")
        settings = {
            "host": host,
            "port": str(data.port),
            "database": _text(data.database, "database"),
            "user": _text(data.user, "user"),
        }
        return settings, _text(data.password, "password")
    if isinstance(data, S3Create):
        settings = {
            "endpoint": _url(data.endpoint, "endpoint"),
            "bucket": _text(data.bucket, "bucket"),
            "region": _text(data.region, "region", empty=True),
            "accessKeyId": _text(data.access_key_id, "accessKeyId"),
        }
        return settings, _text(data.secret_access_key, "secretAccessKey")
    return {"url": _url(data.url, "url")}, _text(data.token, "token")


def environment(name: str, kind: str, settings: Mapping[str, str], secret: str) -> dict[str, str]:
    """A workspace's variables for one connection, the secret included."""
    values: dict[str, str]
    if kind == "postgresql":
        host = settings["host"]
        netloc_host = f"[{host}]" if ":" in host else host
        dsn = (
            f"postgresql://{quote(settings['user'], safe='')}:{quote(secret, safe='')}"
            f"@{netloc_host}:{settings['port']}/{quote(settings['database'], safe='')}"
        )
        values = {
            "HOST": host,
            "PORT": settings["port"],
            "DATABASE": settings["database"],
            "USER": settings["user"],
            "PASSWORD": secret,
            "DSN": dsn,
        }
    elif kind == "s3":
        values = {
            "ENDPOINT": settings["endpoint"],
            "BUCKET": settings["bucket"],
            "ACCESS_KEY_ID": settings["accessKeyId"],
            "SECRET_ACCESS_KEY": secret,
            "REGION": settings["region"],
        }
    else:
        values = {"URL": settings["url"], "TOKEN": secret}
    return {f"{PREFIX}{name}_{field}": value for field, value in values.items()}


def _text(value: str, field: str, *, empty: bool = False) -> str:
    """``value`` without surrounding spaces, if it has no control characters (they
    would end a line of an environment file or a header)."""
    value = value.strip() if field not in ("password", "secretAccessKey", "token") else value
    if (not value and not empty) or any(
        unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in value
    ):
        raise _invalid(field)
    return value


def _url(value: str, field: str) -> str:
    value = _text(value, field)
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise _invalid(field) from None
    if parts.scheme not in ("http", "https") or not host or "@" in parts.netloc:
        raise _invalid(field)
    return value


def _invalid(field: str) -> InvalidInput:
    return InvalidInput(
        N_("The connection's %(field)s is not valid."),
        params={"field": field},
        details={"field": field},
    )
