"""Recorded runs: pipelines, notebooks and scripts run by Balsam, each with a record."""
