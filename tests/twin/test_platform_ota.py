"""``twin platform ota`` end to end: a provisioned fleet, a campaign on disk, PUF-built devices.

The devices here are rebuilt from their silicon (the chip manufactured again from the run seed,
its PUF read, its keys derived at boot), so the firmware-decryption key that unwraps the
content key is the one the device's root of trust derives, and the platform only ever knew its
public half (recorded at enrolment). The attacks are the named ones of issue 5 against the
files the command wrote; each asserts the typed refusal and the device's unchanged state. The
same checks over synthetic keys are tests/test_firmware_pair.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cloud.errors import CampaignError
from cloud.inventory import SqliteInventory
from devices.errors import FirmwareRejected
from devices.firmware import Image, UpdateClient
from twin.commands import provision
from twin.core.cose import open1, sign1
from twin.core.keys import p256_private_key
from twin.platform_ota import (
    campaign_folder,
    device_update_client,
    publish_ota,
    read_offer,
)

IMAGE = b"medtwin bp cuff application v2 " * 64
FACTORY = Image(1, hashlib.sha256(b"factory").digest())


def _app() -> typer.Typer:
    app = typer.Typer()
    provision.register(app)
    return app


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six devices (two of each kind), version 2 published with a 50 % canary."""
    out = tmp_path_factory.mktemp("ota") / "fleet"
    runner, app = CliRunner(), _app()
    made = runner.invoke(app, ["provision", "--devices", "6", "--out", str(out), "--seed", "4"])
    assert made.exit_code == 0, made.output
    image = out.parent / "app-v2.bin"
    image.write_bytes(IMAGE)
    result = runner.invoke(app, ["platform", "ota", str(out), "--image", str(image),
                                 "--version", "2", "--canary", "50"])
    assert result.exit_code == 0, result.output
    assert "bp_cuff/app version 2: 1 canary + 1 rollout device(s)" in result.output
    return out


def _devices(out: Path, kind: str) -> list[str]:
    return sorted(p.parent.name for p in (out / "devices").glob("*/device.json")
                  if json.loads(p.read_text())["kind"] == kind)


def _snapshot(client: UpdateClient) -> tuple[object, ...]:
    return client.running, client.counter, client.staged


def _install(client: UpdateClient, offer: tuple[bytes, bytes, bytes]) -> Image:
    client.stage(*offer)
    running = client.boot_staged()
    client.confirm()
    return running


def test_the_campaign_is_laid_out_and_audited(fleet: Path) -> None:
    folder = campaign_folder(fleet, "bp_cuff", 2)
    doc = json.loads((folder / "campaign.json").read_text())
    cuffs = _devices(fleet, "bp_cuff")
    assert (doc["component"], doc["sequence"], doc["size"], doc["state"]) == (
        "bp_cuff/app", 2, len(IMAGE), "canary")
    assert doc["sha256"] == hashlib.sha256(IMAGE).hexdigest()
    assert sorted(doc["stages"]["canary"] + doc["stages"]["rollout"]) == cuffs
    assert sorted(p.stem for p in (folder / "keys").iterdir()) == cuffs
    assert IMAGE[:64] not in (folder / "image.enc").read_bytes()  # encrypted
    assert b"PRIVATE" not in (fleet / "pki" / "firmware-signing.pem").read_bytes()
    assert {p.name for p in (fleet / "ota").iterdir()} == {
        "ecg_patch-app-2", "bp_cuff-app-2", "sweat_patch-app-2"}
    inventory = SqliteInventory(fleet / "inventory.sqlite")
    offered = [a for a in inventory.audit() if a.event == "ota_offered"]
    inventory.close()
    assert len(offered) == 6
    assert {a.detail["stage"] for a in offered} == {"canary", "rollout"}


def test_a_device_rebuilt_from_its_puf_decrypts_verifies_and_installs_it(fleet: Path) -> None:
    for device in _devices(fleet, "bp_cuff"):
        client = device_update_client(fleet, device, FACTORY)
        running = _install(client, read_offer(campaign_folder(fleet, "bp_cuff", 2), device))
        assert (running.sequence, client.counter) == (2, 2)
        assert running.measurement == hashlib.sha256(IMAGE).digest() and running.healthy


Offer = tuple[bytes, bytes, bytes]


def _unsigned(offer: Offer, _other: Offer) -> Offer:
    return open1(offer[0]).payload, offer[1], offer[2]


def _wrong_signer(offer: Offer, _other: Offer) -> Offer:
    rogue = p256_private_key(b"attacker", b"firmware signing")
    return sign1(open1(offer[0]).payload, rogue, b"fw-signing"), offer[1], offer[2]


def _tampered(offer: Offer, _other: Offer) -> Offer:
    cipher = bytearray(offer[2])
    cipher[len(cipher) // 2] ^= 0x01
    return offer[0], offer[1], bytes(cipher)


def _another_devices_key(offer: Offer, other: Offer) -> Offer:
    return offer[0], other[1], offer[2]


@pytest.mark.parametrize("attack, reason", [
    (_unsigned, "signature"),
    (_wrong_signer, "signature"),
    (_tampered, "decrypt"),
    (_another_devices_key, "decrypt"),
], ids=["unsigned", "signed_by_the_wrong_key", "tampered_ciphertext", "another_devices_key"])
def test_attack_on_the_published_campaign_is_refused(
        fleet: Path, attack: Callable[[Offer, Offer], Offer], reason: str) -> None:
    mine, theirs = _devices(fleet, "sweat_patch")
    folder = campaign_folder(fleet, "sweat_patch", 2)
    client = device_update_client(fleet, mine, FACTORY)
    before = _snapshot(client)
    with pytest.raises(FirmwareRejected) as caught:
        client.stage(*attack(read_offer(folder, mine), read_offer(folder, theirs)))
    assert caught.value.reason == reason
    assert _snapshot(client) == before


def test_attack_rollback_and_equal_version_replay_are_refused(tmp_path: Path, fleet: Path
                                                              ) -> None:
    """Version 3 installed; the genuine, signed version 2 campaign is then a rollback, and
    version 3 offered again a replay. The device refuses both and keeps running 3."""
    out = tmp_path / "fleet"
    shutil.copytree(fleet, out)
    publish_ota(out, IMAGE + b"v3", 3, kinds=("ecg_patch",))
    device = _devices(out, "ecg_patch")[0]
    client = device_update_client(out, device, FACTORY)
    _install(client, read_offer(campaign_folder(out, "ecg_patch", 3), device))
    before = _snapshot(client)
    for sequence, reason in ((2, "rollback"), (3, "replay")):
        with pytest.raises(FirmwareRejected) as caught:
            client.stage(*read_offer(campaign_folder(out, "ecg_patch", sequence), device))
        assert caught.value.reason == reason
        assert _snapshot(client) == before


def test_the_platform_refuses_to_publish_a_replay_or_a_rollback(tmp_path: Path, fleet: Path
                                                               ) -> None:
    out = tmp_path / "fleet"
    shutil.copytree(fleet, out)
    listing = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(CampaignError) as replay:
        publish_ota(out, IMAGE, 2)
    assert replay.value.reason == "replay"
    inventory = SqliteInventory(out / "inventory.sqlite")
    chip = inventory.records()[0].chip
    inventory.update(chip, 1.0, "firmware_installed", firmware=5)
    inventory.close()
    with pytest.raises(CampaignError) as rollback:
        publish_ota(out, IMAGE, 4)
    assert rollback.value.reason == "rollback"
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == listing  # nothing written


@pytest.mark.parametrize("args, message", [
    (["--version", "0"], "version"),
    (["--version", "3", "--canary", "0"], "--canary"),
    (["--version", "3", "--kind", "toaster"], "--kind"),
    (["--version", "2"], "replay"),
])
def test_bad_ota_flags_exit_2_with_one_line(fleet: Path, tmp_path: Path, args: list[str],
                                            message: str) -> None:
    image = tmp_path / "app.bin"
    image.write_bytes(IMAGE)
    result = CliRunner().invoke(_app(), ["platform", "ota", str(fleet), "--image", str(image),
                                         *args])
    assert result.exit_code == 2 and message in result.output, result.output
    missing = CliRunner().invoke(_app(), ["platform", "ota", str(fleet), "--image",
                                          str(tmp_path / "none.bin"), "--version", "3"])
    assert missing.exit_code == 2 and "--image" in missing.output


def test_devices_enrolled_before_firmware_keys_were_recorded_are_left_out(
        tmp_path: Path, fleet: Path) -> None:
    out = tmp_path / "fleet"
    shutil.copytree(fleet, out)
    inventory = SqliteInventory(out / "inventory.sqlite")
    cuffs = [r for r in inventory.records() if r.kind == "bp_cuff"]
    inventory.update(cuffs[0].chip, 1.0, "test", firmware_key=b"")  # as a version-1 file
    inventory.close()
    (published,) = publish_ota(out, IMAGE, 7, kinds=("bp_cuff",))
    assert published.without_key == (cuffs[0].device,)
    assert published.canary + published.rollout == (cuffs[1].device,)
    inventory = SqliteInventory(out / "inventory.sqlite")
    inventory.update(cuffs[1].chip, 1.0, "test", firmware_key=b"")
    inventory.close()
    with pytest.raises(CampaignError, match="renew them first") as caught:
        publish_ota(out, IMAGE, 8, kinds=("bp_cuff",))
    assert caught.value.reason == "no_targets"
