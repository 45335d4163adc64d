"""``python -m ncutils.book``: see :mod:`ncutils.book.runner.cli`."""

import sys

from ncutils.book.runner.cli import main

sys.exit(main())
