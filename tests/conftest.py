"""Test plugins: real SeaweedFS, the selected database, and one real Balsam app."""

pytest_plugins = [
    "tests.fixtures.seaweed",
    "tests.fixtures.postgres",
    "tests.fixtures.app",
    "tests.fixtures.library",
    "tests.fixtures.workspaces",
]
