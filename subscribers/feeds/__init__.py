"""Posts from the city's own systems: RSS/Atom news feeds and civil-protection CAP alerts.

A Django app of its own (label `feeds`) inside subscribers: it creates posts (topics) and
publishes them through subscribers.delivery, like the API does for a token.
"""
