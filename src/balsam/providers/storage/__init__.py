"""Object storage providers (S3)."""
