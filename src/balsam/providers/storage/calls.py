"""Calls to an S3 server: every botocore failure as :class:`ProviderError`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from balsam.errors import ProviderError


@contextmanager
def backend(operation: str) -> Iterator[None]:
    """Turn every botocore error raised inside into a ProviderError (its ``details``
    name the operation and the server's error code)."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        raise ProviderError(
            f"Object storage failed to {operation} ({code}).",
            details={"operation": operation, "code": code},
        ) from exc
    except BotoCoreError as exc:
        raise ProviderError(
            f"Object storage failed to {operation} ({type(exc).__name__}).",
            details={"operation": operation, "code": type(exc).__name__},
        ) from exc


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) or "unknown"
