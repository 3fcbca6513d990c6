"""``python -m marketplace.cli`` is ``webi``."""

from marketplace.cli.main import run

run()
