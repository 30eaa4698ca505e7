"""The `transition` command line (the top layer)."""

from transition.cli._main import main

__all__ = ["main"]
