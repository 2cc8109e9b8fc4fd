"""Firmware on the platform side: build, sign, encrypt, and wrap the content key per device.

A release is one signed manifest and one ciphertext for the whole fleet; what differs per
device is only the wrapped content key (ECDH-ES with the device's firmware-decryption public
key, HKDF-SHA256, AES key wrap: RFC 3394). A device without the matching private key, which
its PUF derives on demand, cannot read the image, and nothing the device does not verify
(signature, sequence number, digest) reaches its flash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from twin.core.cose import sign1
from twin.core.firmware import Manifest, encode_manifest, kek_info
from twin.core.keys import hkdf, p256_private_key


@dataclass(frozen=True)
class Release:
    """A signed, encrypted firmware release.

    Attributes:
        manifest: the manifest values.
        envelope: COSE_Sign1 over the manifest bytes (what devices verify).
        ciphertext: the AES-256-GCM encrypted image (manifest bytes as AAD).
        ephemeral: the campaign's ECDH private key (kept by the platform to wrap keys).
        content_key: the image key (kept by the platform to wrap keys).
    """

    manifest: Manifest
    envelope: bytes
    ciphertext: bytes
    ephemeral: ec.EllipticCurvePrivateKey
    content_key: bytes

    def wrap_for(self, device_public: ec.EllipticCurvePublicKey) -> bytes:
        """The content key wrapped for one device's firmware-decryption key."""
        shared = self.ephemeral.exchange(ec.ECDH(), device_public)
        kek = hkdf(shared, kek_info(self.manifest.component, self.manifest.sequence))
        return aes_key_wrap(kek, self.content_key)


def build_release(image: bytes, component: str, sequence: int,
                  signing_key: ec.EllipticCurvePrivateKey, secret: bytes,
                  kid: bytes = b"fw-signing") -> Release:
    """Sign and encrypt a firmware image.

    Args:
        image: the plaintext image.
        component: the component it is for.
        sequence: its version (strictly greater than what devices run, to be installed).
        signing_key: the platform's firmware-signing key (devices hold its public key).
        secret: platform secret material; the content key, nonce and ephemeral key are
            derived from it with the component and sequence, so a release is reproducible.
        kid: key identifier placed in the envelope's protected header.

    Returns:
        The release.
    """
    label = f"{component}/{sequence}".encode()
    content_key = hkdf(secret, b"medtwin fw content key/" + label)
    nonce = hkdf(secret, b"medtwin fw nonce/" + label, 12)
    ephemeral = p256_private_key(secret, b"medtwin fw epk/" + label)
    epk = ephemeral.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
    manifest = Manifest(component, sequence, len(image), hashlib.sha256(image).digest(), nonce,
                        epk)
    manifest_bytes = encode_manifest(manifest)
    ciphertext = AESGCM(content_key).encrypt(nonce, image, manifest_bytes)
    return Release(manifest, sign1(manifest_bytes, signing_key, kid), ciphertext, ephemeral,
                   content_key)
