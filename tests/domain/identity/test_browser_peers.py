"""A browser's session is a browser's: never a workspace's, and bound to the local
browser (uid) that started it (addresses as ``web.peers`` names clients)."""

from __future__ import annotations

import pytest

from balsam.context import AppContext
from balsam.domain.identity.service import IdentityService
from balsam.errors import Unauthenticated
from tests.fixtures.app import TestUser


@pytest.mark.parametrize("address", ["uid:{base}", "uid:{above}", "loopback:closed", "unknown"])
def test_no_session_is_used_or_started_by_a_workspace_or_an_unknown_socket(
    ctx: AppContext, alice: TestUser, address: str
) -> None:
    base = ctx.settings.workspaces.uid_base
    address = address.format(base=base, above=base + 7)
    identity = IdentityService(ctx)
    with pytest.raises(Unauthenticated, match="workspace"):
        identity.check_browser_peer(address)
    with pytest.raises(Unauthenticated):
        identity.start_session(identity.get_user(alice.username), address=address)


def test_a_session_is_bound_to_the_local_uid_that_started_it(
    ctx: AppContext, alice: TestUser
) -> None:
    identity = IdentityService(ctx)
    user = identity.get_user(alice.username)
    for where in ("127.0.0.1", "192.0.2.9", "testclient"):  # root's, a remote browser
        identity.check_browser_peer(where)
    bound, _ = identity.start_session(user, address="uid:1001")
    assert identity.authenticate_session(bound, "uid:1001")[0].username == alice.username
    for elsewhere in ("uid:1002", "127.0.0.1", "192.0.2.9"):
        with pytest.raises(Unauthenticated, match="another browser"):
            identity.authenticate_session(bound, elsewhere)
    free, _ = identity.start_session(user, address="127.0.0.1")  # bound to no local uid
    assert identity.authenticate_session(free, "192.0.2.9")[0].username == alice.username
    with pytest.raises(Unauthenticated, match="another browser"):
        identity.authenticate_session(free, "uid:1002")
    # A cookie taken elsewhere ends nothing; its own browser's logout does.
    assert identity.end_session(bound, "uid:1002") is None
    assert identity.authenticate_session(bound, "uid:1001")
    assert identity.end_session(bound, "uid:1001") == alice.username
    with pytest.raises(Unauthenticated):
        identity.authenticate_session(bound, "uid:1001")
