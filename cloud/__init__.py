"""The cloud tier: ingest with verification, alerting and the run store.

Everything here is sans-IO except :mod:`cloud.store`, which writes SQLite (ARCHITECTURE.md
section 2): :class:`cloud.ingest.CloudCore` takes events with ``now`` and returns effects, and
a driver hands the storage effects to a :class:`cloud.store.RunStore`.
"""
