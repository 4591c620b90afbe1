"""``python -m lima_core`` is the ``lima`` command."""

from lima_core.cli import main

main()
