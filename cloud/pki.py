"""The platform's PKI: a root CA, an issuing CA, device and service certificates, and the CRL.

Profile (ECDSA P-256, SHA-256, deterministic RFC 6979 signatures so a run is reproducible):

* **root**: self-signed, ``CA:TRUE`` with ``pathLen:1``, keyCertSign and cRLSign;
* **issuing CA**: signed by the root, ``CA:TRUE, pathLen:0``; issues every leaf and the CRL;
* **device**: subject CN = UEID hex, O = tenant; SAN URI ``urn:medtwin:device:<UEID>``;
  digitalSignature; extended key usage clientAuth; short validity (days);
* **service** (broker, cloud): SAN DNS and IP names; serverAuth and/or clientAuth.

Path validation uses ``cryptography.x509.verification`` (RFC 5280 path building and profile
checks); the revocation check reads the issuing CA's CRL after checking the CRL's own
signature and validity window (RFC 5280 6.3). Nothing here does I/O: PEM in, PEM out.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from cloud.errors import CertificateRejected
from twin.core.identity import Ueid

__all__ = ["Authority", "CertificateRejected", "build_crl", "issue_device", "issue_service",
           "load_pem_certificate", "make_issuing", "make_root", "verify_device"]


_SHA256 = hashes.SHA256()


def _serial(*parts: bytes) -> int:
    """A positive 159-bit serial from the certificate's content (RFC 5280 4.1.2.2: <= 20
    octets, unique per CA). Content-derived rather than random keeps runs reproducible."""
    digest = hashlib.sha256(b"\x00".join(parts)).digest()
    return int.from_bytes(digest[:20], "big") >> 1 or 1


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_ids(builder: x509.CertificateBuilder, public: ec.EllipticCurvePublicKey,
             issuer: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    return builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(public), critical=False
    ).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer), critical=False
    )


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate and private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Sign a certificate builder with this CA's key (deterministic ECDSA)."""
        return builder.sign(self.key, _SHA256, ecdsa_deterministic=True)

    @property
    def pem(self) -> bytes:
        """The CA certificate, PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _ca_builder(name: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey,
                issuer_public: ec.EllipticCurvePublicKey, now: datetime, days: int,
                path_length: int) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(issuer).public_key(public)
        .serial_number(_serial(name.public_bytes(), public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)))
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    )
    return _key_ids(builder, public, issuer_public)


def make_root(key: ec.EllipticCurvePrivateKey, org: str, now: datetime,
              days: int = 3650) -> Authority:
    """A self-signed root CA for the platform."""
    name = _name(f"{org} root CA", org)
    pub = key.public_key()
    cert = _ca_builder(name, name, pub, pub, now, days, 1).sign(
        key, _SHA256, ecdsa_deterministic=True)
    return Authority(cert, key)


def make_issuing(root: Authority, key: ec.EllipticCurvePrivateKey, org: str, now: datetime,
                 days: int = 1825) -> Authority:
    """An issuing CA under ``root`` that signs device and service certificates and the CRL."""
    name = _name(f"{org} issuing CA", org)
    builder = _ca_builder(name, root.certificate.subject, key.public_key(),
                          root.key.public_key(), now, days, 0)
    return Authority(root.sign(builder), key)


def _leaf_builder(ca: Authority, subject: x509.Name, public: ec.EllipticCurvePublicKey,
                  now: datetime, validity: timedelta,
                  usages: Sequence[x509.ObjectIdentifier]) -> x509.CertificateBuilder:
    spki = public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca.certificate.subject)
        .public_key(public)
        .serial_number(_serial(subject.public_bytes(), spki, now.isoformat().encode()))
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    )
    return _key_ids(builder, public, ca.key.public_key())


def issue_device(ca: Authority, public: ec.EllipticCurvePublicKey, tenant: str, now: datetime,
                 validity: timedelta = timedelta(days=7)) -> x509.Certificate:
    """Issue a device's operational client certificate.

    The UEID is computed here from the public key, never taken from the request, so the name
    in the certificate is bound to the key the device will prove possession of (PSA goal 1).
    """
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise CertificateRejected("device keys must be ECDSA P-256")
    ueid = Ueid.from_public_key(public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    builder = _leaf_builder(ca, _name(ueid.hex, tenant), public, now, validity,
                            [ExtendedKeyUsageOID.CLIENT_AUTH]).add_extension(
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier(ueid.uri)]), critical=False)
    return ca.sign(builder)


def issue_service(ca: Authority, public: ec.EllipticCurvePublicKey, name: str, org: str,
                  now: datetime, *, server: bool, client: bool,
                  hosts: Iterable[str] = ("localhost", "127.0.0.1"),
                  validity: timedelta = timedelta(days=365)) -> x509.Certificate:
    """Issue a broker or cloud service certificate with DNS/IP SANs."""
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    builder = _leaf_builder(ca, _name(name, org), public, now, validity, usages).add_extension(
        x509.SubjectAlternativeName(sans), critical=False)
    return ca.sign(builder)


def build_crl(ca: Authority, revoked: Iterable[tuple[int, datetime]], now: datetime,
              next_update: timedelta = timedelta(days=1), number: int = 1
              ) -> x509.CertificateRevocationList:
    """The issuing CA's CRL listing ``(serial, revocation time)`` pairs (RFC 5280 5)."""
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.certificate.subject)
               .last_update(now).next_update(now + next_update)
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.key.public_key()), critical=False))
    for serial, when in sorted(revoked):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
    return builder.sign(ca.key, _SHA256, ecdsa_deterministic=True)


def _check_crl(crl: x509.CertificateRevocationList, issuing: x509.Certificate,
               now: datetime) -> None:
    """RFC 5280 6.3.3: the CRL must be the issuer's, correctly signed and current."""
    if crl.issuer != issuing.subject:
        raise CertificateRejected("the CRL is not the issuing CA's")
    public = issuing.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(public):
        raise CertificateRejected("the CRL signature does not verify")
    next_update = crl.next_update_utc
    if now < crl.last_update_utc or next_update is None or now > next_update:
        raise CertificateRejected("the CRL is not current")


def verify_device(leaf: x509.Certificate, issuing: x509.Certificate, root: x509.Certificate,
                  crl: x509.CertificateRevocationList, now: datetime) -> Ueid:
    """Validate a device certificate at ``now`` and return the identity it proves.

    Args:
        leaf: the device's certificate (as presented in mutual TLS).
        issuing: the issuing CA certificate (the intermediate).
        root: the trust anchor.
        crl: the issuing CA's current CRL.
        now: the verification time.

    Returns:
        The device's UEID, read from the SAN URI and checked against the certificate's key.

    Raises:
        CertificateRejected: path validation failed (signature, validity, profile, EKU), the
            CRL is not usable, the certificate is revoked, or the name is not bound to the key.
    """
    try:
        verifier = PolicyBuilder().store(Store([root])).time(now).build_client_verifier()
        verifier.verify(leaf, [issuing])
    except VerificationError as exc:
        raise CertificateRejected(f"path validation failed: {exc}") from None
    _check_crl(crl, issuing, now)
    if crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None:
        raise CertificateRejected("the certificate is revoked")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ueid = Ueid.from_uri(san.get_values_for_type(x509.UniformResourceIdentifier)[0])
    except (x509.ExtensionNotFound, IndexError, ValueError) as exc:
        raise CertificateRejected(f"no device identity in the certificate: {exc}") from None
    spki = leaf.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    if Ueid.from_public_key(spki) != ueid:
        raise CertificateRejected("the device identity is not the hash of its key")
    return ueid


def load_pem_certificate(data: bytes, where: str) -> x509.Certificate:
    """Parse a PEM certificate, naming ``where`` it came from on failure.

    Raises:
        CertificateRejected: the bytes are not a PEM certificate.
    """
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateRejected(f"{where}: not a PEM certificate ({exc})") from None
