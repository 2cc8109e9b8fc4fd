"""Everything on the wearable: its lifecycle, battery, sensors and the core that ties them.

The wearable core is sans-IO: drivers feed it events with ``now`` and carry out the effects it
returns, so the same device logic runs under SimPy and over real MQTT.
"""
