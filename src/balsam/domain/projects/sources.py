"""Which http(s) hosts a project may be started from: the outbound rule of
:mod:`balsam.domain.outbound`, applied to ``sourceLocation``. Git is also told
not to follow redirects for sources (see the git provider)."""

from __future__ import annotations

from balsam.domain.outbound import check_outbound_url

__all__ = ["check_public_source"]


def check_public_source(url: str, private_hosts: list[str]) -> None:
    """InvalidInput unless ``url`` may be fetched (see ``check_outbound_url``)."""
    check_outbound_url(url, private_hosts, field="sourceLocation")
