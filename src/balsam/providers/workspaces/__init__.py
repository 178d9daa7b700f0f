"""Workspace providers: where JupyterLab servers run (local processes, Kubernetes)."""
