"""``python -m messaging ...``: the same command line as the ``messaging`` script."""

from messaging.cli import main

raise SystemExit(main())
