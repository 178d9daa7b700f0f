"""Project-scoped S3 credentials."""
