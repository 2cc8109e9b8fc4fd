"""The device's update client: verify, check anti-rollback, decrypt, stage, confirm or revert.

Order of checks (each raises :class:`~devices.errors.FirmwareRejected` and leaves the device
as it was):

1. the COSE_Sign1 envelope verifies with the platform's firmware-signing key, the trust
   anchor built into the device (PSA goal 5, secure update);
2. the manifest parses and names this device's component;
3. its sequence number is strictly greater than the anti-rollback counter (PSA goal 6): an
   older signed image is a rollback, an equal one a replay;
4. the content key unwraps with the key derived from the device's own firmware-decryption
   key (ECDH-ES + HKDF + AES key wrap), and the image decrypts under AES-GCM with the manifest
   bytes as associated data, so a ciphertext cannot be moved under another manifest;
5. the plaintext has the manifest's size and SHA-256 digest.

A verified image is *staged*, as MCUboot's "test" swap: the device reboots into it and the
anti-rollback counter advances only when the new image confirms itself healthy; an image
that does not confirm is reverted to the previous one, so a bad release cannot brick a device.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

from devices.errors import FirmwareRejected
from twin.core.cose import SignatureInvalid, verify1
from twin.core.firmware import Manifest, ManifestError, decode_manifest, kek_info, self_test
from twin.core.keys import hkdf


@dataclass(frozen=True, slots=True)
class Image:
    """An installed or staged image: its version, measurement (SHA-256), and whether it
    passes its power-on self test once booted."""

    sequence: int
    measurement: bytes
    healthy: bool = True


class UpdateClient:
    """One device's firmware slots and anti-rollback counter.

    Args:
        component: the component this device runs, e.g. ``"ecg_patch/app"``.
        trust_anchor: the platform's firmware-signing public key.
        decryption_key: the device's firmware-decryption private key (PUF-derived).
        running: the image the device runs now; its sequence is the counter's start.
    """

    def __init__(self, component: str, trust_anchor: ec.EllipticCurvePublicKey,
                 decryption_key: ec.EllipticCurvePrivateKey, running: Image) -> None:
        self.component = component
        self._anchor = trust_anchor
        self._key = decryption_key
        self.running = running
        self.counter = running.sequence
        self.staged: Image | None = None
        self._previous: Image | None = None

    @property
    def decryption_public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half of the firmware-decryption key (what the platform wraps keys for)."""
        return self._key.public_key()

    def verify(self, envelope: bytes, wrapped_key: bytes, ciphertext: bytes) -> Image:
        """Run checks 1-5 without changing anything; return the verified image.

        Raises:
            FirmwareRejected: with the reason code of the first failed check.
        """
        try:
            manifest_bytes = verify1(envelope, self._anchor)
            manifest = decode_manifest(manifest_bytes)
        except SignatureInvalid as exc:
            raise FirmwareRejected("signature", str(exc)) from None
        except ManifestError as exc:
            raise FirmwareRejected("manifest", str(exc)) from None
        if manifest.component != self.component:
            raise FirmwareRejected("component", f"{manifest.component!r} is not for this device")
        if manifest.sequence <= self.counter:
            reason = "replay" if manifest.sequence == self.counter else "rollback"
            raise FirmwareRejected(reason, f"sequence {manifest.sequence} <= {self.counter}")
        image = self._decrypt(manifest, manifest_bytes, wrapped_key, ciphertext)
        if len(image) != manifest.size or not hmac.compare_digest(
                hashlib.sha256(image).digest(), manifest.digest):
            raise FirmwareRejected("digest", "the image is not the one the manifest describes")
        return Image(manifest.sequence, manifest.digest, self_test(image))

    def _decrypt(self, manifest: Manifest, aad: bytes, wrapped: bytes, ciphertext: bytes) -> bytes:
        try:
            epk = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), manifest.epk)
            shared = self._key.exchange(ec.ECDH(), epk)
            kek = hkdf(shared, kek_info(manifest.component, manifest.sequence))
            content_key = aes_key_unwrap(kek, wrapped)
            return AESGCM(content_key).decrypt(manifest.nonce, ciphertext, aad)
        except (InvalidUnwrap, InvalidTag, ValueError) as exc:
            raise FirmwareRejected("decrypt", type(exc).__name__) from None

    def stage(self, envelope: bytes, wrapped_key: bytes, ciphertext: bytes) -> Image:
        """Verify an update and stage it for the next boot (the running image is kept).

        Raises:
            FirmwareRejected: any check failed; nothing is staged.
        """
        self.staged = self.verify(envelope, wrapped_key, ciphertext)
        return self.staged

    def boot_staged(self) -> Image:
        """Reboot into the staged image (on trial until :meth:`confirm`).

        Raises:
            FirmwareRejected: nothing is staged.
        """
        if self.staged is None:
            raise FirmwareRejected("state", "no staged image to boot")
        self._previous, self.running, self.staged = self.running, self.staged, None
        return self.running

    def confirm(self) -> None:
        """The new image is healthy: make it permanent and advance the anti-rollback counter.

        Raises:
            FirmwareRejected: the running image is not on trial.
        """
        if self._previous is None:
            raise FirmwareRejected("state", "no image on trial")
        self.counter = max(self.counter, self.running.sequence)
        self._previous = None

    def revert(self) -> Image:
        """The trial image failed: go back to the previous image (the counter is unchanged).

        Raises:
            FirmwareRejected: the running image is not on trial.
        """
        if self._previous is None:
            raise FirmwareRejected("state", "no image on trial")
        self.running, self._previous = self._previous, None
        return self.running
