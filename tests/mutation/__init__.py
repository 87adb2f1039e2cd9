"""Mutation testing of the measurement core (``make mutation``); not part of ``make test``."""
