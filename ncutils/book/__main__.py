"""``python -m ncutils.book``: see :mod:`ncutils.book.cli`."""

import sys

from ncutils.book.cli import main

sys.exit(main())
