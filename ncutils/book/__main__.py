"""``python -m ncutils.book``: see :mod:`ncutils.book.runner.cli`."""

import sys

chapter = sys.argv[1:2] == ["_execute"]  # a chapter's process: papermill only, not the whole command line
try:
    if chapter:
        from ncutils.book.runner.execute import execute_child
    else:
        from ncutils.book.runner.cli import main
except KeyboardInterrupt:  # Ctrl-C while importing: nothing has started yet
    print("interrupted before anything was computed.", file=sys.stderr)
    sys.exit(130)

sys.exit(execute_child(sys.argv[2:]) if chapter else main())
