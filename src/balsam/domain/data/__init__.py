"""Project data in object storage: how long deleted data is kept (retention)."""
