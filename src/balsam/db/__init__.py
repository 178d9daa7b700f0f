"""Database: engine and sessions, models, and Alembic migrations."""
