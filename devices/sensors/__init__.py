"""Sensor signal sources, computed for a whole fleet of one kind at once (numpy batches)."""
