"""Root-of-trust recipes over the hazmat primitives, for a QDID device and the injected baseline.

Both devices offer the same services (``sign``, ``attest``, ``seal``/``unseal``, measured
boot); they differ only in where their keys come from at boot:

* :class:`QdidDevice` reads its PUF, recovers the seed with the fuzzy extractor and derives its
  keys on demand (the seed article's QDID: "identities and keys ... created on demand, within
  the silicon"). Its flash holds helper data and public configuration only.
* :class:`InjectedKeyDevice` is the conventional process the article criticises: a
  provisioning station generated its keys and wrote them into flash, so a flash dump (an
  attacker holding the board) yields keys that sign as the device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from devices.rot.errors import KeySlotError, RotError, StorageError
from devices.rot.extractor import HelperData, enrol, recover
from devices.rot.hazmat import Flash, KeySlots, MeasurementRegisters, MonotonicCounter
from devices.rot.keys import DeviceKeys, KeyLabel, p256_key, spki
from devices.rot.physics import ChipArray, Conditions, read_bits
from devices.rot.token import sign_token
from twin.core.attestation import AttestationClaims, Lifecycle, SoftwareComponent
from twin.core.firmware import FIRMWARE_KEY_OID
from twin.core.identity import Ueid

DETERMINISTIC_ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)  # RFC 6979

IMPLEMENTATION_ID = hashlib.sha256(b"medtwin QDID root of trust v1").digest()
"""PSA implementation ID (RFC 9783 section 4.2.3): names the RoT design, not the device."""
HELPER_BLOCK = "rot/helper"
INDEX_BLOCK = "rot/index"
_SEALED = "store/"


@dataclass(frozen=True, slots=True)
class FirmwareImage:
    """A boot stage as the boot ROM sees it.

    Attributes:
        kind: PSA measurement type ("BL", "PRoT", "App" ...).
        version: version text.
        signer_id: hash of the signing key.
        image: the image bytes that are measured.
    """

    kind: str
    version: str
    signer_id: bytes
    image: bytes

    def measure(self) -> SoftwareComponent:
        """The component's measurement (SHA-256 of the image, PSA goal 4)."""
        return SoftwareComponent(self.kind, hashlib.sha256(self.image).digest(), self.version,
                                 self.signer_id)


class RotDevice:
    """The services both devices share; subclasses fill the key slots at boot.

    Args:
        flash: the device's non-volatile memory.
        implementation_id: the RoT design's PSA implementation ID.
        lifecycle: the PSA security lifecycle code.
    """

    def __init__(self, flash: Flash, implementation_id: bytes = IMPLEMENTATION_ID,
                 lifecycle: int = Lifecycle.SECURED) -> None:
        self.flash = flash
        self.implementation_id = implementation_id
        self.lifecycle = int(lifecycle)
        self.slots = KeySlots()
        self.counter = MonotonicCounter()
        self.registers = MeasurementRegisters()
        self.boot_seed = b""

    # ---------------------------------------------------------------- boot and power

    def _start(self, keys: DeviceKeys, firmware: Sequence[FirmwareImage],
               rng: np.random.Generator) -> None:
        """Load keys, measure each boot stage in order, draw the boot seed (RFC 9783 4.2.4)."""
        self.power_down()
        for name, key in (("identity", keys.identity), ("attestation", keys.attestation),
                          ("storage", keys.storage), ("firmware", keys.firmware)):
            self.slots.load(name, key)
        for stage in firmware:
            self.registers.extend(stage.measure())
        self.boot_seed = rng.bytes(32)

    def power_down(self) -> None:
        """Zeroise the key slots and measurements (they exist only while powered)."""
        self.slots.zeroise()
        self.registers.reset()
        self.boot_seed = b""

    # ---------------------------------------------------------------- identity

    def _key(self, name: str) -> ec.EllipticCurvePrivateKey:
        key = self.slots.get(name)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    @property
    def identity_spki(self) -> bytes:
        """The identity public key (SPKI DER): what the CSR and certificate carry.

        Raises:
            KeySlotError: if the device is not booted.
        """
        return spki(self._key("identity").public_key())

    @property
    def attestation_spki(self) -> bytes:
        """The attestation public key (SPKI DER) the verifier registers.

        Raises:
            KeySlotError: if the device is not booted.
        """
        return spki(self._key("attestation").public_key())

    @property
    def firmware_spki(self) -> bytes:
        """The firmware-decryption public key (SPKI DER): the platform wraps content keys for it.

        Raises:
            KeySlotError: if the device is not booted.
        """
        return spki(self._key("firmware").public_key())

    def firmware_key(self) -> ec.EllipticCurvePrivateKey:
        """The firmware-decryption key slot, for the update client (devices.firmware), which
        runs inside the root of trust's boundary on a real part.

        Raises:
            KeySlotError: if the device is not booted.
        """
        return self._key("firmware")

    @property
    def ueid(self) -> Ueid:
        """The device's UEID: a hash of its identity public key (RFC 9711 section 4.2.1).

        Raises:
            KeySlotError: if the device is not booted.
        """
        return Ueid.from_public_key(self.identity_spki)

    # ---------------------------------------------------------------- recipes

    def sign(self, message: bytes) -> bytes:
        """Sign with the identity key: deterministic ECDSA P-256 (RFC 6979), DER.

        Raises:
            KeySlotError: if the device is not booted.
        """
        return self._key("identity").sign(message, DETERMINISTIC_ECDSA)  # RFC 6979

    def attest(self, nonce: bytes, now: float) -> bytes:
        """A PSA initial attestation token over this boot's measurements (PSA goal 3).

        Args:
            nonce: the verifier's challenge (32, 48 or 64 bytes, RFC 9783 section 4.1.1).
            now: the device's time, recorded as ``iat``.

        Returns:
            COSE_Sign1 token bytes.

        Raises:
            KeySlotError: if the device is not booted.
            RotError: for a nonce of a size the profile does not allow.
        """
        if len(nonce) not in (32, 48, 64):
            raise RotError("attestation nonce must be 32, 48 or 64 bytes")
        claims = AttestationClaims(bytes(nonce), self.ueid, self.implementation_id,
                                   self.lifecycle, self.boot_seed, self.registers.components,
                                   float(now))
        return sign_token(self._key("attestation"), claims)

    def csr(self, tenant: str) -> bytes:
        """A certification request for the identity key (RFC 2986), DER.

        The subject is a hint (CN = UEID hex, O = tenant): the platform names the certificate
        from the key itself, so the request's real content is the key and the proof that this
        device holds it (the self-signature, RFC 2986 section 3). A non-critical extension
        (:data:`~twin.core.firmware.FIRMWARE_KEY_OID`) carries the firmware-decryption public
        key, signed together with the request, so the platform records it at enrolment.

        Raises:
            KeySlotError: if the device is not booted.
        """
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, tenant),
                             x509.NameAttribute(NameOID.COMMON_NAME, self.ueid.hex)])
        firmware = x509.UnrecognizedExtension(x509.ObjectIdentifier(FIRMWARE_KEY_OID),
                                              self.firmware_spki)
        builder = (x509.CertificateSigningRequestBuilder().subject_name(subject)
                   .add_extension(firmware, critical=False))
        request = builder.sign(self._key("identity"), hashes.SHA256(),
                               ecdsa_deterministic=True)  # RFC 6979
        return request.public_bytes(serialization.Encoding.DER)

    def seal(self, name: str, plaintext: bytes, rng: np.random.Generator) -> None:
        """Store ``plaintext`` encrypted under the storage key (AES-256-GCM, PSA goal 9).

        The name is the associated data, so a blob moved to another name fails to open.

        Raises:
            KeySlotError: if the device is not booted.
        """
        key = self.slots.get("storage")
        assert isinstance(key, bytes)
        nonce = rng.bytes(12)  # 96-bit random nonce (NIST SP 800-38D section 8.2.2)
        blob = nonce + AESGCM(key).encrypt(nonce, plaintext, name.encode())
        self.flash.write(_SEALED + name, blob)

    def unseal(self, name: str) -> bytes:
        """Open a sealed object.

        Raises:
            KeySlotError: if the device is not booted.
            StorageError: if there is no such object, or it fails authentication (tampered,
                or sealed by another device's key).
        """
        key = self.slots.get("storage")
        assert isinstance(key, bytes)
        blob = self.flash.read(_SEALED + name)
        if blob is None or len(blob) < 28:
            raise StorageError(f"no sealed object named {name!r}")
        try:
            return AESGCM(key).decrypt(blob[:12], blob[12:], name.encode())
        except InvalidTag:
            raise StorageError(f"sealed object {name!r} failed authentication") from None


class QdidDevice(RotDevice):
    """A device whose keys come from its QDID PUF, on demand, at every boot.

    Args:
        chip: the device's silicon (a batch of one).
        flash: its flash, holding the helper data written at enrolment.
    """

    def __init__(self, chip: ChipArray, flash: Flash, implementation_id: bytes = IMPLEMENTATION_ID,
                 lifecycle: int = Lifecycle.SECURED) -> None:
        super().__init__(flash, implementation_id, lifecycle)
        if chip.chips != 1:
            raise ValueError("a device has exactly one chip")
        self.chip = chip

    @classmethod
    def enrol(cls, chip: ChipArray, rng: np.random.Generator) -> QdidDevice:
        """Enrol a chip on the tester and write its helper data to a fresh flash.

        Args:
            chip: the chip (a batch of one).
            rng: the tester's randomness (enrolment reads, random codeword).

        Returns:
            The device, not yet booted.
        """
        flash = Flash()
        flash.write(HELPER_BLOCK, enrol(chip, rng).helpers[0].to_bytes())
        flash.write(INDEX_BLOCK, (0).to_bytes(4, "big"))
        return cls(chip, flash)

    @property
    def key_index(self) -> int:
        """The derivation index in use (public configuration in flash)."""
        raw = self.flash.read(INDEX_BLOCK)
        return int.from_bytes(raw, "big") if raw else 0

    def boot(self, cond: Conditions, rng: np.random.Generator,
             firmware: Sequence[FirmwareImage] = ()) -> None:
        """Read the PUF, recover the seed, derive the keys, measure the firmware.

        Args:
            cond: the conditions the chip boots in.
            rng: randomness of this boot (the PUF read, the boot seed).
            firmware: the boot stages, in order.

        Raises:
            HelperDataError: if the helper data in flash is missing or corrupt.
            ReconstructionError: if the read cannot be corrected (the device stays unbooted).
        """
        raw = self.flash.read(HELPER_BLOCK)
        helper = HelperData.from_bytes(raw if raw is not None else b"")
        noisy = read_bits(self.chip, cond, rng, helper.pairs()[None, :])
        seed = recover(noisy[0], helper)
        keys = DeviceKeys.derive(seed, self.key_index)
        if keys.index:
            # The attestation key is the chip's for life, like a PSA IAK (RFC 9783 4.2.1):
            # it is what the platform registered at manufacture, so it must survive an
            # identity rotation for the platform to recognise the rotated device (ADR 0010).
            keys = replace(keys, attestation=p256_key(seed, KeyLabel.ATTESTATION, 0))
        self._start(keys, firmware, rng)

    def rotate_identity(self) -> int:
        """Move to the next derivation index: a new identity from the same silicon.

        The platform asks for this (re-enrolment after a compromise or a change of owner); it
        takes effect at the next boot. The identity key (and so the UEID), the storage and the
        firmware keys change; the attestation key does not (see :meth:`boot`).

        Returns:
            The new index.
        """
        index = self.key_index + 1
        self.flash.write(INDEX_BLOCK, index.to_bytes(4, "big"))
        return index


class InjectedKeyDevice(RotDevice):
    """The baseline: keys generated by a provisioning station and stored in flash."""

    @classmethod
    def provision(cls, station_rng: np.random.Generator) -> InjectedKeyDevice:
        """Provisioning station: generate the keys and write them, in the clear, to flash.

        Args:
            station_rng: the station's random number generator.

        Returns:
            The device, not yet booted.
        """
        flash = Flash()
        seed = station_rng.bytes(32)  # the station's key material, not the chip's
        for label in (KeyLabel.IDENTITY, KeyLabel.ATTESTATION, KeyLabel.FIRMWARE):
            der = p256_key(seed, label).private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())
            flash.write(f"keys/{label.value}", der)
        flash.write(f"keys/{KeyLabel.STORAGE.value}", station_rng.bytes(32))
        return cls(flash)

    def boot(self, rng: np.random.Generator, firmware: Sequence[FirmwareImage] = ()) -> None:
        """Load the injected keys from flash, measure the firmware.

        Raises:
            KeySlotError: if a key block is missing from flash.
        """
        def load(label: KeyLabel) -> bytes:
            raw = self.flash.read(f"keys/{label.value}")
            if raw is None:
                raise KeySlotError(f"no {label.value} key in flash")
            return raw

        def private(label: KeyLabel) -> ec.EllipticCurvePrivateKey:
            key = serialization.load_der_private_key(load(label), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return key

        keys = DeviceKeys(private(KeyLabel.IDENTITY), private(KeyLabel.ATTESTATION),
                          load(KeyLabel.STORAGE), private(KeyLabel.FIRMWARE), 0)
        self._start(keys, firmware, rng)
