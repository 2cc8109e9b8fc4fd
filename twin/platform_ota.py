"""``twin platform ota``: a signed, encrypted OTA campaign written into a provisioned directory.

The cores do the work (:func:`cloud.ota.plan_targets` picks the devices from the inventory,
:func:`cloud.firmware.build_release` signs and encrypts, :class:`cloud.ota.Campaign` splits the
canary from the rollout); this module is their file shell. One campaign per component (each
device kind runs its own application image), laid out as::

    DIR/pki/firmware-signing.pem                    the firmware-signing PUBLIC key: the trust
                                                    anchor devices verify manifests with
    DIR/ota/<kind>-app-<version>/campaign.json      component, version, size, SHA-256, canary
                                                    share, stages {canary: [...], rollout:
                                                    [...]} (device ids), state, devices left
                                                    out for want of a firmware key
    DIR/ota/<kind>-app-<version>/manifest.cose      the COSE_Sign1 SUIT-style manifest
    DIR/ota/<kind>-app-<version>/image.enc          the AES-256-GCM image (manifest as AAD)
    DIR/ota/<kind>-app-<version>/keys/<device>.kw   the content key wrapped for that device's
                                                    firmware-decryption key (ECDH-ES+A256KW)

Every targeted chip gets an audited ``ota_offered`` event (campaign, version, stage) in
``DIR/inventory.sqlite``. The signing key and content secret are derived from the run seed,
like the rest of this demo platform's keys: never a place for real firmware keys. Devices
report back over MQTT in a running fleet (sim or live), where the campaign core holds the
rollout until every canary device has installed; here the campaign is published, in its canary
stage, and nothing pretends that devices have answered.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.errors import CampaignError, InventoryError
from cloud.firmware import Release, build_release
from cloud.ota import Campaign, Targets, plan_targets
from devices.firmware import Image, UpdateClient
from devices.rot.device import QdidDevice
from devices.rot.physics import NOMINAL, manufacture
from devices.rot.testing import FIRMWARE
from twin.core.keys import p256_private_key
from twin.core.seeds import SeedTree
from twin.platform import KINDS, close_platform, find_device, open_platform, run_now

MAX_IMAGE = 16 * 2**20
"""The manifest's size limit (twin.core.firmware)."""


@dataclass(frozen=True, slots=True)
class Published:
    """One campaign written to disk."""

    folder: Path
    component: str
    sequence: int
    canary: tuple[str, ...]
    rollout: tuple[str, ...]
    without_key: tuple[str, ...]


def signing_key(seed: int) -> ec.EllipticCurvePrivateKey:
    """The platform's firmware-signing key for a run seed (demo platform: seed-derived)."""
    tree = SeedTree(seed)
    return p256_private_key(tree.entropy("platform", "firmware-signing", n_bytes=32),
                            b"medtwin firmware signing")


def campaign_folder(out: Path, kind: str, sequence: int) -> Path:
    """Where the campaign of ``kind`` at ``sequence`` lives."""
    return out / "ota" / f"{kind}-app-{sequence}"


def publish_ota(out: Path, image: bytes, sequence: int, canary: float = 0.05,
                kinds: tuple[str, ...] = KINDS) -> list[Published]:
    """Sign, encrypt and publish ``image`` as version ``sequence`` to the fleet in ``out``.

    Every component is checked before anything is written, so a refusal writes nothing.

    Args:
        out: a directory written by ``twin provision``.
        image: the plaintext firmware image.
        sequence: its version (strictly newer than what every target runs).
        canary: share of each component's targets offered the update first.
        kinds: the device kinds to update (default: every kind in the fleet).

    Returns:
        The campaigns written, one per component with targets.

    Raises:
        CampaignError: an empty or oversized image, a rollback or replay, a campaign already
            published, or no device that can take it.
        InventoryError: ``out`` is not a provisioned directory.
    """
    if not 0 < len(image) <= MAX_IMAGE:
        raise CampaignError("image", f"an image is 1..{MAX_IMAGE:,} bytes, got {len(image):,}")
    if not 1 <= sequence < 2**32:
        raise CampaignError("image", f"the version must be in 1..2**32-1, got {sequence}")
    platform, config = open_platform(out)
    try:
        records = platform.inventory.records()
        plans: list[Targets] = []
        for kind in kinds:
            if not any(r.kind == kind for r in records):
                continue
            if campaign_folder(out, kind, sequence).exists():
                raise CampaignError("replay", f"{kind} version {sequence} is already published")
            plans.append(plan_targets(records, kind, sequence))
        if not plans:
            raise CampaignError("no_targets", f"no device of kind {', '.join(kinds)}")
        seed = int(config["seed"])
        signing = signing_key(seed)
        secret = SeedTree(seed).entropy("platform", "firmware-secret", n_bytes=32)
        _write_anchor(out, signing.public_key())
        done = []
        for plan in plans:
            release = build_release(image, plan.component, sequence, signing, secret)
            published = _write_campaign(out, plan, release, canary)
            platform.inventory.note_many([
                (plan.chips[device], {"campaign": published.folder.name, "sequence": sequence,
                                      "stage": stage})
                for stage, devices in (("canary", published.canary),
                                       ("rollout", published.rollout))
                for device in devices], run_now(platform), "ota_offered")
            done.append(published)
        return done
    finally:
        close_platform(platform)


def _write_anchor(out: Path, public: ec.EllipticCurvePublicKey) -> None:
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    (out / "pki" / "firmware-signing.pem").write_bytes(pem)


def _write_campaign(out: Path, plan: Targets, release: Release, canary: float) -> Published:
    """Write one campaign into a temporary folder, then rename it into place (all or nothing)."""
    kind = plan.component.split("/")[0]
    folder = campaign_folder(out, kind, release.manifest.sequence)
    campaign = Campaign(release, plan.keys, canary_fraction=canary)
    first = tuple(offer.device for offer in campaign.start())
    rest = tuple(d for d in plan.keys if d not in first)
    temp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temp, ignore_errors=True)
    (temp / "keys").mkdir(parents=True)
    (temp / "manifest.cose").write_bytes(release.envelope)
    (temp / "image.enc").write_bytes(release.ciphertext)
    for device, key in plan.keys.items():
        (temp / "keys" / f"{device}.kw").write_bytes(release.wrap_for(key))
    m = release.manifest
    doc = {"schema": 1, "component": m.component, "sequence": m.sequence, "size": m.size,
           "sha256": m.digest.hex(), "canary_fraction": canary, "state": campaign.state.value,
           "stages": {"canary": list(first), "rollout": list(rest)},
           "without_firmware_key": list(plan.without_key)}
    (temp / "campaign.json").write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(temp, folder)
    return Published(folder, m.component, m.sequence, first, rest, plan.without_key)


# ---------------------------------------------------------------- the device's side


def read_offer(folder: Path, device: str) -> tuple[bytes, bytes, bytes]:
    """What a device fetches from a campaign: manifest envelope, its wrapped key, image.

    Raises:
        InventoryError: the device is not a target of this campaign.
    """
    try:
        return ((folder / "manifest.cose").read_bytes(),
                (folder / "keys" / f"{device}.kw").read_bytes(),
                (folder / "image.enc").read_bytes())
    except OSError:
        raise InventoryError(f"{folder.name} has no offer for {device[:40]!r}") from None


def device_update_client(out: Path, device_id: str, running: Image) -> UpdateClient:
    """Rebuild a provisioned device from its silicon and give it its update client.

    The chip is manufactured again from the run seed (the same silicon: ADR 0004), its PUF
    read and its keys derived at boot, as the device would; the firmware-decryption key comes
    from that boot, and the trust anchor from ``DIR/pki/firmware-signing.pem``.

    Raises:
        InventoryError: unknown device or unreadable directory.
    """
    platform, config = open_platform(out)
    try:
        record = platform.inventory.get(find_device(platform.inventory, device_id))
        doc = json.loads((out / "devices" / record.device / "device.json").read_text())
        anchor = serialization.load_pem_public_key(
            (out / "pki" / "firmware-signing.pem").read_bytes())
    except (OSError, ValueError, KeyError) as exc:
        raise InventoryError(f"cannot rebuild {device_id[:40]!r}: {exc}") from None
    finally:
        close_platform(platform)
    assert isinstance(anchor, ec.EllipticCurvePublicKey)
    tree, number = SeedTree(int(config["seed"])), int(doc["chip_number"])
    device = QdidDevice.enrol(manufacture(tree, [number]), tree.rng("chip", number, "enrol"))
    device.boot(NOMINAL, tree.rng("chip", number, "boot", "ota"), FIRMWARE)
    return UpdateClient(f"{record.kind}/app", anchor, device.firmware_key(), running)
