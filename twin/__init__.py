"""medtwin: a healthcare IoT security digital twin.

The kernel (`twin.core`) holds the pure contract every other package shares; the drivers
(`twin.sim`, later `twin.live`) run the sans-IO cores of `devices`, `broker` and `cloud`.
"""

__version__ = "0.1.0"
