"""Chaos runs: the marketplace under process kills, RPC outages and deep reorgs (``scripts/chaos.py``)."""
