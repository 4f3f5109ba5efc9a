"""`python -m service.cli`: the same as the `whaleid` command."""

import sys

from service.cli import main

# Guarded: importing this module (e.g. walking the package) must not run a command.
if __name__ == "__main__":
    sys.exit(main())
