"""Providers: narrow typed interfaces to backends, one module per implementation."""
