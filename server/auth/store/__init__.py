"""Persistent state of the auth layer: keys, stored credentials, the usage ledger (see ``db.py``)."""

from .db import Store, UsageRecord, UsageTotal, open_store

__all__ = ["Store", "UsageRecord", "UsageTotal", "open_store"]
