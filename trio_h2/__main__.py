"""``python -m trio_h2``: the command-line runner (see :mod:`trio_h2._cli`)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
