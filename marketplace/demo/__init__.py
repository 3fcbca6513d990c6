"""``webi demo``: the marketplace end to end on one machine (see ``marketplace.demo.run``)."""
