"""``python -m lima_core`` is the ``lima`` command."""

import sys

if len(sys.argv) == 3 and sys.argv[1] == "hostagent" and not sys.argv[2].startswith("-"):
    # How `lima start` runs the host agent (instance.hostagent_command): straight to it, without
    # the CLI's start-up (typer and every command module), which would delay the VM's start.
    # The same as `lima hostagent NAME`, error edge included.
    from lima_core import hostagent
    from lima_core.errors import LimaError

    try:
        code = hostagent.run(sys.argv[2])
    except LimaError as exc:
        print(f"lima: {exc.message}", file=sys.stderr)
        code = 1
    sys.exit(code)

from lima_core.cli import main  # noqa: E402

main()
