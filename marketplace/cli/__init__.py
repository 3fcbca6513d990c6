"""The ``webi`` command line."""
