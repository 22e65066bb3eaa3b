"""Reusable test helpers (a real JupyterHub: :mod:`helpers.hub`)."""
