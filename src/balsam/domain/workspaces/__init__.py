"""Processing environments (workspaces): JupyterLab on a project branch."""
