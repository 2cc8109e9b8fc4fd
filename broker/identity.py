"""Who a verified client certificate names: the broker's :class:`~broker.policy.Principal`.

Pure (no ``ssl``, no sockets): the TLS stack has already validated the chain, the validity
window and the CRL (RFC 5280 6.1 and 6.3) before this runs; this module reads the identity the
certificate *proves* and checks that it is well formed, so the policy judges the certificate
and never what the peer typed into its MQTT CONNECT (stock amqtt trusts the username:
ARCHITECTURE.md section 5).

Profile (``cloud.pki``):

* **device**: SAN URI ``urn:medtwin:device:<UEID>``, the UEID being ``0x01 || SHA-256(SPKI)[:16]``
  of the certificate's own key, O = tenant, EKU clientAuth -> ``Principal(DEVICE, O, UEID)``;
* **cloud service**: no device URI, CN one of the configured service names, O = tenant,
  EKU clientAuth -> ``Principal(CLOUD, O, CN)``.

Anything else (the broker's own serverAuth certificate, an unknown service, a device URI that
is not the hash of the key) is refused with :class:`~broker.policy.AccessDenied`.
"""

from __future__ import annotations

from collections.abc import Collection

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.policy import AccessDenied, Principal, Role
from twin.core import topics
from twin.core.errors import IdentityError, TopicError
from twin.core.identity import URI_PREFIX, Ueid

DEFAULT_CLOUD_NAMES = frozenset({"cloud"})
"""Service CNs that act for the cloud tier unless the broker is told otherwise."""


def _single(cert: x509.Certificate, oid: x509.ObjectIdentifier, what: str) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    if len(values) != 1 or not isinstance(values[0].value, str):
        raise AccessDenied(f"the certificate subject needs exactly one {what}")
    return values[0].value


def _has_client_auth(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku


def _device_uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    uris: list[str] = san.get_values_for_type(x509.UniformResourceIdentifier)
    return [u for u in uris if u.startswith(URI_PREFIX)]


def principal_from_certificate(cert: x509.Certificate,
                               cloud_names: Collection[str] = DEFAULT_CLOUD_NAMES) -> Principal:
    """The principal a client certificate proves, read from the certificate alone.

    Args:
        cert: the peer's leaf certificate, already path-validated and revocation-checked by
            the TLS stack (the caller's duty: this function does not check signatures).
        cloud_names: service common names allowed to act as the cloud tier; any other
            service certificate is refused, so a leaked broker or dashboard certificate
            cannot read the fleet.

    Returns:
        ``Principal(DEVICE, tenant, ueid_hex)`` or ``Principal(CLOUD, tenant, name)``.

    Raises:
        AccessDenied: no clientAuth usage (RFC 5280 4.2.1.12), a malformed tenant, a device
            URI that is malformed, duplicated or not bound to the certificate's key (PSA
            goal 1: the name must be the hash of the key the peer proved it holds), or a
            service name that is not a cloud identity.
    """
    if not _has_client_auth(cert):
        raise AccessDenied("the certificate is not for client authentication")
    try:
        tenant = topics.check_tenant(_single(cert, NameOID.ORGANIZATION_NAME, "O"))
    except TopicError:
        raise AccessDenied("the certificate's O= is not a tenant name") from None
    uris = _device_uris(cert)
    if len(uris) > 1:
        raise AccessDenied("a device certificate names exactly one device")
    if uris:
        return Principal(Role.DEVICE, tenant, _bound_ueid(cert, uris[0]).hex)
    name = _single(cert, NameOID.COMMON_NAME, "CN")
    if name not in cloud_names:
        raise AccessDenied("the certificate names neither a device nor a cloud service")
    return Principal(Role.CLOUD, tenant, name)


def _bound_ueid(cert: x509.Certificate, uri: str) -> Ueid:
    """The UEID in ``uri``, checked to be the hash of ``cert``'s key (RFC 9711 4.2.1)."""
    try:
        ueid = Ueid.from_uri(uri)
    except IdentityError:
        raise AccessDenied("malformed device URI") from None
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    if Ueid.from_public_key(spki) != ueid:
        raise AccessDenied("the device identity is not the hash of its key")
    return ueid
