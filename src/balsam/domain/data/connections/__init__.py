"""A project's data connections (PostgreSQL, S3, HTTP APIs): their rules
(:mod:`.service`), kinds (:mod:`.kinds`), sealed secrets (:mod:`.sealing`) and the
import of a SQL query's result as Parquet (:mod:`.query`)."""
