"""The platform PKI: profile, path validation, revocation, and a check by OpenSSL itself."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from cloud import pki
from cloud.pki import CertificateRejected
from twin.core.clock import to_datetime
from twin.core.identity import Ueid
from twin.core.keys import p256_private_key

NOW = to_datetime(0)
LATER = NOW + timedelta(hours=1)


@pytest.fixture(scope="module")
def cas():
    root = pki.make_root(p256_private_key(b"test", b"root"), "medtwin", NOW)
    issuing = pki.make_issuing(root, p256_private_key(b"test", b"issuing"), "medtwin", NOW)
    return root, issuing


def device_key(i: int = 0):
    return p256_private_key(b"device", str(i).encode())


def spki(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_device_certificate_profile(cas):
    _, issuing = cas
    key = device_key()
    cert = pki.issue_device(issuing, key.public_key(), "ward-7", NOW)
    ueid = Ueid.from_public_key(spki(key))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [ueid.uri]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc - NOW <= timedelta(days=7)


def test_an_active_device_verifies_and_its_identity_is_returned(cas):
    root, issuing = cas
    key = device_key(1)
    cert = pki.issue_device(issuing, key.public_key(), "ward-7", NOW)
    crl = pki.build_crl(issuing, [], NOW)
    assert pki.verify_device(cert, issuing.certificate, root.certificate, crl, LATER) == \
        Ueid.from_public_key(spki(key))


def test_a_revoked_device_is_refused(cas):
    root, issuing = cas
    cert = pki.issue_device(issuing, device_key(2).public_key(), "ward-7", NOW)
    crl = pki.build_crl(issuing, [(cert.serial_number, NOW)], NOW)
    with pytest.raises(CertificateRejected, match="revoked"):
        pki.verify_device(cert, issuing.certificate, root.certificate, crl, LATER)


def test_an_expired_certificate_is_refused(cas):
    root, issuing = cas
    cert = pki.issue_device(issuing, device_key(3).public_key(), "ward-7", NOW,
                            validity=timedelta(days=1))
    crl = pki.build_crl(issuing, [], NOW + timedelta(days=2))
    with pytest.raises(CertificateRejected, match="path validation"):
        pki.verify_device(cert, issuing.certificate, root.certificate, crl,
                          NOW + timedelta(days=2))


def test_a_certificate_from_another_ca_is_refused(cas):
    root, issuing = cas
    rogue_root = pki.make_root(p256_private_key(b"rogue", b"root"), "medtwin", NOW)
    rogue = pki.make_issuing(rogue_root, p256_private_key(b"rogue", b"issuing"), "medtwin", NOW)
    cert = pki.issue_device(rogue, device_key(4).public_key(), "ward-7", NOW)
    crl = pki.build_crl(issuing, [], NOW)
    with pytest.raises(CertificateRejected, match="path validation"):
        pki.verify_device(cert, issuing.certificate, root.certificate, crl, LATER)


def test_a_stale_or_forged_crl_is_refused(cas):
    root, issuing = cas
    cert = pki.issue_device(issuing, device_key(5).public_key(), "ward-7", NOW)
    stale = pki.build_crl(issuing, [], NOW, next_update=timedelta(minutes=30))
    with pytest.raises(CertificateRejected, match="not current"):
        pki.verify_device(cert, issuing.certificate, root.certificate, stale, LATER)
    forger = pki.Authority(issuing.certificate, p256_private_key(b"forger", b"key"))
    forged = pki.build_crl(forger, [], NOW)
    with pytest.raises(CertificateRejected, match="signature"):
        pki.verify_device(cert, issuing.certificate, root.certificate, forged, LATER)


def test_a_server_certificate_is_not_a_client_identity(cas):
    root, issuing = cas
    cert = pki.issue_service(issuing, device_key(6).public_key(), "broker", "medtwin", NOW,
                             server=True, client=False)
    crl = pki.build_crl(issuing, [], NOW)
    with pytest.raises(CertificateRejected):
        pki.verify_device(cert, issuing.certificate, root.certificate, crl, LATER)


def test_issuance_is_deterministic(cas):
    _, issuing = cas
    a = pki.issue_device(issuing, device_key(7).public_key(), "ward-7", NOW)
    b = pki.issue_device(issuing, device_key(7).public_key(), "ward-7", NOW)
    assert a == b and a.serial_number == b.serial_number


def test_garbage_pem_is_named():
    with pytest.raises(CertificateRejected, match=r"devices/x/cert\.pem"):
        pki.load_pem_certificate(b"-----BEGIN CERTIFICATE-----\nnope\n", "devices/x/cert.pem")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_accepts_an_active_device_and_rejects_a_revoked_one(cas, tmp_path: Path):
    root, issuing = cas
    good = pki.issue_device(issuing, device_key(8).public_key(), "ward-7", NOW)
    bad = pki.issue_device(issuing, device_key(9).public_key(), "ward-7", NOW)
    crl = pki.build_crl(issuing, [(bad.serial_number, NOW)], NOW)
    pem = serialization.Encoding.PEM
    (tmp_path / "root.pem").write_bytes(root.pem)
    (tmp_path / "issuing.pem").write_bytes(issuing.pem)
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(pem))
    (tmp_path / "good.pem").write_bytes(good.public_bytes(pem))
    (tmp_path / "bad.pem").write_bytes(bad.public_bytes(pem))

    def openssl_verify(leaf: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem",
             "-crl_check", "-CRLfile", "crl.pem", "-purpose", "sslclient",
             "-attime", str(int(LATER.timestamp())), leaf],
            cwd=tmp_path, capture_output=True, text=True, check=False)

    ok = openssl_verify("good.pem")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    refused = openssl_verify("bad.pem")
    assert refused.returncode != 0
    assert "revoked" in (refused.stdout + refused.stderr)
