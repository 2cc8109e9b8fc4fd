"""The broker package's exceptions (house style 6: one tree per package, documented here).

::

    MedtwinError                    (twin.core.errors)
    ├── AccessDenied                (broker.policy) the policy refused a connect, publish or
    │   │                           subscribe; opaque to the peer by design
    │   └── ClientIdRejected        (broker.gate) the MQTT client id is not the certificate's
    └── BrokerSetupError            the broker cannot start or reload: missing or malformed PKI
                                    files, a CRL that is not the issuing CA's, not current, or
                                    older than the one in force, a port that cannot be bound

A peer's bad bytes never raise out of the broker: they end that peer's connection only.
"""

from __future__ import annotations

from twin.core.errors import MedtwinError


class BrokerSetupError(MedtwinError):
    """The embedded broker cannot start, or cannot apply a reload; the message says which
    file or setting is wrong and why."""
