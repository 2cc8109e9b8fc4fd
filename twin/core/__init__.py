"""The pure shared contract: messages, codec, topics, identities, events, effects, seeds.

Nothing here performs I/O, reads the clock or uses global randomness, so every package
(devices, broker, cloud, the drivers and the dashboard) can depend on it.
"""
