"""The distribution's version, single-sourced (pyproject.toml reads it)."""

__version__ = "0.1.0"
