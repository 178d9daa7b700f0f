"""Users, passwords, login sessions and personal API tokens."""
