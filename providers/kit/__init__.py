"""The adapter kit: plumbing every protocol package shares, written once.

Protocol packages import from here and from the engine, never from each other.
"""
