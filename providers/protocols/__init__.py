"""Wire adapters: one package per provider protocol (not per provider)."""
