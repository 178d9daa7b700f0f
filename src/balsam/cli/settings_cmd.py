"""``balsam settings``: every setting with its variable, type, default and help text.

``docs/settings.md`` is this command's markdown output; a test keeps the two equal.
"""

from __future__ import annotations

import html
import json
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import click
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError

from balsam.settings import Settings


class InvalidSettings(click.ClickException):
    exit_code = 2


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; overrides that are not None (command-line flags) win."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        prefix = str(Settings.model_config.get("env_prefix", ""))
        # A model-wide check (e.g. production's) has no field: say "settings".
        problems = "; ".join(
            f"{prefix}{'__'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            if e["loc"]
            else f"settings: {e['msg']}"
            for e in exc.errors()
        )
        raise InvalidSettings(f"invalid settings: {problems}") from exc
    except SettingsError as exc:
        # A value the environment source cannot parse at all (a list or object field
        # given as plain text): its message names the field; lists are JSON.
        raise InvalidSettings(
            f"invalid settings: {exc}; list and object values are JSON, "
            "e.g. BALSAM_SOURCE_FILE_ROOTS='[\"/srv/sources\"]'"
        ) from None


@dataclass(frozen=True)
class SettingDoc:
    env: str
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class SettingGroup:
    title: str
    summary: str
    env_prefix: str
    settings: list[SettingDoc]


def setting_groups() -> list[SettingGroup]:
    """The top-level settings, then one group per nested settings model."""
    config = Settings.model_config
    prefix = str(config.get("env_prefix", "")).upper()
    delimiter = str(config.get("env_nested_delimiter", "__"))
    groups = [SettingGroup("General", "Top-level settings.", prefix, [])]
    for name, field in Settings.model_fields.items():
        env = prefix + name.upper()
        if _is_group(field.annotation):
            nested: type[BaseModel] = field.annotation  # type: ignore[assignment]
            docs = [
                _doc(f"{env}{delimiter}{sub.upper()}", subfield)
                for sub, subfield in nested.model_fields.items()
            ]
            groups.append(SettingGroup(name, _summary(nested), env + delimiter, docs))
        else:
            groups[0].settings.append(_doc(env, field))
    return groups


def iter_settings() -> Iterator[SettingDoc]:
    for group in setting_groups():
        yield from group.settings


def _is_group(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _summary(model: type[BaseModel]) -> str:
    return (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""


def _doc(env: str, field: FieldInfo) -> SettingDoc:
    return SettingDoc(
        env=env,
        type=_type_text(field),
        default=_default_text(field),
        description=" ".join((field.description or "").split()),
    )


_BOUNDS = (
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "<="),
    (annotated_types.Lt, "lt", "<"),
)


def _type_text(field: FieldInfo) -> str:
    text = _type_name(field.annotation)
    for rule in field.metadata:
        for kind, attribute, symbol in _BOUNDS:
            if isinstance(rule, kind):
                text += f" {symbol} {getattr(rule, attribute)}"
    return text


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(arg) for arg in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in get_args(annotation))
    if origin is not None:  # e.g. list[Path]; pydantic-settings reads these as JSON
        return f"{origin.__name__}[{', '.join(_type_name(arg) for arg in get_args(annotation))}]"
    names = {type(None): "None", SecretStr: "secret", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default_text(field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if default is None or SecretStr in (field.annotation, *get_args(field.annotation)):
        return "unset"  # never print a secret, even a default one
    if isinstance(default, bool | list | dict):
        return json.dumps(default, default=str)
    return str(default)


def render_text() -> str:
    lines: list[str] = []
    for group in setting_groups():
        lines.append(f"[{group.title}] {group.summary}")
        for doc in group.settings:
            lines += [
                doc.env,
                f"    type: {doc.type}    default: {doc.default}",
                f"    {doc.description}",
            ]
        lines.append("")
    return "\n".join(lines)


def render_markdown() -> str:
    lines = [
        "# Settings",
        "",
        "<!-- Generated by `balsam settings --format markdown`; edit src/balsam/settings.py. -->",
        "",
        "Balsam reads its settings from environment variables. Nested groups join the group",
        "and field names with `__`, e.g. `BALSAM_STORAGE__S3_PORT=9000`. `balsam up` also",
        "takes `--host`, `--port` and `--data-dir`, which override the environment.",
    ]
    for group in setting_groups():
        heading = f"{group.title.capitalize()}: `{group.env_prefix}*`"
        lines += [
            "",
            f"## {heading}",
            "",
            group.summary,
            "",
            "| Variable | Type | Default | Description |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{d.env}` | `{_cell(d.type)}` | `{_cell(d.default)}` | "
            f"{_cell(html.escape(d.description, quote=False))} |"
            for d in group.settings
        ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    show_default=True,
    help="Plain text for the terminal, or markdown for docs.",
)
def settings(fmt: str) -> None:
    """List every setting: environment variable, type, default and description."""
    click.echo(render_markdown() if fmt == "markdown" else render_text(), nl=False)
