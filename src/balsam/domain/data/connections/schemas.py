"""Shapes of the connections API (``/api/v1/projects/{id}/connections``).

A request names its ``kind`` and the fields of that kind; the secret field
(``password``, ``secretAccessKey``, ``token``) is accepted on creation only and
never returned: answers say ``secretSet``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from balsam.domain.schemas import ApiModel

Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        description="Letters A-Z, digits and '_', starting with a letter (case does not "
        "matter: it is stored upper-case); names the workspace's BALSAM_CONN_<NAME>_* "
        "variables. Unique in the project.",
    ),
]
Text = Annotated[str, Field(min_length=1, max_length=255)]
Secret = Annotated[str, Field(min_length=1, max_length=4096)]


class PostgresqlCreate(ApiModel):
    name: Name
    kind: Literal["postgresql"]
    host: Text
    port: int = Field(5432, ge=1, le=65535)
    database: Text
    user: Text
    password: Secret


class S3Create(ApiModel):
    name: Name
    kind: Literal["s3"]
    endpoint: Text = Field(description="http(s) URL of the S3 server.")
    bucket: Text
    region: str = Field("", max_length=64)
    access_key_id: Text = Field(alias="accessKeyId")
    secret_access_key: Secret = Field(alias="secretAccessKey")


class HttpCreate(ApiModel):
    name: Name
    kind: Literal["http"]
    url: Text = Field(description="http(s) base URL of the API.")
    token: Secret


ConnectionCreate = Annotated[PostgresqlCreate | S3Create | HttpCreate, Field(discriminator="kind")]


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ConnectionPublic(_Out):
    name: str
    kind: str = Field(description="postgresql, s3 or http.")
    settings: dict[str, str] = Field(
        description="What is not secret: host, port, database, user (postgresql); "
        "endpoint, bucket, region, accessKeyId (s3); url (http)."
    )
    secret_set: bool = Field(
        alias="secretSet", description="A secret is stored (sealed); it is never shown."
    )
    variables: list[str] = Field(
        description="The environment variables the project's workspaces get from it."
    )
    created_by: str = Field(alias="createdBy")
    created_at: datetime = Field(alias="createdAt")


class ConnectionList(_Out):
    connections: list[ConnectionPublic]
