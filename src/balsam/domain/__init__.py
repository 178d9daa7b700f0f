"""Domain services: rules, permissions and transactions, one folder per area."""
