"""The live driver: the sim's cores over real mutual-TLS MQTT on the (scaled) wall clock.

:class:`LiveRun` provisions a fleet, serves it with the embedded broker on loopback and runs
the scenario; see :mod:`twin.live.driver`.
"""

from twin.live.driver import LiveRun, check_supported
from twin.live.identities import LiveError

__all__ = ["LiveError", "LiveRun", "check_supported"]
