"""``tessera simulate``: labelled traffic for a fleet of agents, and how well detection caught it."""
