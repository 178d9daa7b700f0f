"""Balsam: a self-hostable data-processing and analysis platform."""

__version__ = "0.1.0"
