"""Test plugins: real SeaweedFS, the selected database, one real Balsam app, and
Chromium for the browser tests."""

pytest_plugins = [
    "tests.fixtures.seaweed",
    "tests.fixtures.postgres",
    "tests.fixtures.app",
    "tests.fixtures.library",
    "tests.fixtures.workspaces",
    "tests.fixtures.chromium",
    "tests.fixtures.oidc",
    "tests.fixtures.oidc_app",
]
