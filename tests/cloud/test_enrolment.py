"""Zero-touch enrolment (cloud.enrolment, cloud.revocation, devices.enrolment) as protocol pairs.

One test per named attack (issue 5 acceptance): enrolment replay, CSR key substitution, unknown
chip, revoked chip re-enrolling; each asserts the typed refusal *and* that the inventory is
unchanged apart from the refusal's own audit event (python-tuf style). Then the happy path,
renewal, rotation, revocation and the MQTT exchange over the prov topics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from cloud import pki
from cloud.attestation import AttestationVerifier
from cloud.enrolment import EnrolmentError, EnrolmentService, Kind, on_prov_message
from cloud.errors import CertificateRejected, InventoryError
from cloud.inventory import AuditEvent, Event, Inventory, MemoryInventory, SqliteInventory, State
from cloud.onboarding import device_grants
from cloud.revocation import RevocationList, revoke
from devices.enrolment import EnrolmentClient, EnrolmentFailed, Phase
from devices.rot.device import IMPLEMENTATION_ID, QdidDevice
from devices.rot.physics import NOMINAL
from devices.rot.testing import FIRMWARE, qdid_device
from twin.core import codec
from twin.core.clock import to_datetime
from twin.core.events import Notice, Publish
from twin.core.firmware import FIRMWARE_KEY_OID
from twin.core.keys import p256_private_key
from twin.core.messages import ProvisioningRequest, ProvisioningResponse

TENANT = "ward-7"
IKM = b"medtwin enrolment tests, never a real key"
REFERENCE = {stage.kind: [stage.measure().value] for stage in FIRMWARE}


@dataclass
class World:
    """A platform with its inventory, and helpers to act as devices."""

    service: EnrolmentService
    inventory: Inventory
    root: pki.Authority
    rng: np.random.Generator

    def chip(self, number: int, register: bool = True) -> EnrolmentClient:
        device = qdid_device(seed=5, chip=number)
        if register:
            self.service.register_chip(device.ueid, device.attestation_spki, 0.0, "ecg_patch")
        return EnrolmentClient(device, device.ueid.hex, TENANT)

    def request(self, client: EnrolmentClient, now: float = 1.0) -> ProvisioningRequest:
        return client.request(self.service.challenge(client.chip, self.rng, now), now)

    def crl(self, now: float) -> x509.CertificateRevocationList:
        assert self.service.revocations is not None
        return self.service.revocations.publish(to_datetime(now))


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[World]:
    root = pki.make_root(p256_private_key(IKM, b"root"), "medtwin", to_datetime(0))
    issuing = pki.make_issuing(root, p256_private_key(IKM, b"issuing"), "medtwin",
                               to_datetime(0))
    inventory: Inventory = (MemoryInventory() if request.param == "memory"
                            else SqliteInventory(f"{tmp_path}/inventory.sqlite"))
    verifier = AttestationVerifier([IMPLEMENTATION_ID], REFERENCE, nonce_ttl_s=60.0)
    service = EnrolmentService(inventory, verifier, issuing, TENANT, "mqtts://broker:8883",
                               timedelta(days=7), RevocationList(issuing))
    yield World(service, inventory, root, np.random.default_rng(7))
    if isinstance(inventory, SqliteInventory):
        inventory.close()


def _snapshot(inventory: Inventory) -> tuple[dict[str, object], list[AuditEvent]]:
    return {r.chip: r for r in inventory.records()}, inventory.audit()


def _refused(world: World, request: ProvisioningRequest, now: float, reason: str,
             cause: str = "") -> EnrolmentError:
    """The typed refusal, the verifier's trusted state unchanged, and an inventory unchanged
    but for one audited refusal."""
    records, audit = _snapshot(world.inventory)
    trusted = world.service.verifier.state()
    with pytest.raises(EnrolmentError) as caught:
        world.service.enrol(request, now)
    assert world.service.verifier.state() == trusted
    assert caught.value.reason == reason, caught.value
    assert caught.value.cause == cause
    after_records, after_audit = _snapshot(world.inventory)
    assert after_records == records  # no state, device, serial or key changed
    added = after_audit[len(audit):]
    assert after_audit[:len(audit)] == audit
    known = request.device in records
    assert [(a.chip, a.event, a.detail["reason"]) for a in added] == (
        [(request.device, "enrol_refused", reason)] if known else [])
    assert world.service.refusals[-1].detail["reason"] == reason  # evidence either way
    return caught.value


# ---------------------------------------------------------------- the happy path


def test_a_genuine_chip_enrols_and_is_onboarded(world: World) -> None:
    client = world.chip(0)
    done = world.service.enrol(world.request(client), 1.0)
    assert done.kind is Kind.ENROL and done.device == client.device.ueid.hex == done.chip
    record = world.inventory.get(client.chip)
    assert (record.state, record.device, record.tenant) == (State.ONBOARDED, done.device, TENANT)
    assert record.certificate_serial == done.serial
    assert [a.event for a in world.inventory.audit(client.chip)][-2:] == ["provision", "onboard"]
    assert done.grants == device_grants(TENANT, done.device)
    issuing = world.service.issuing.certificate
    ueid = pki.verify_device(done.certificate, issuing, world.root.certificate, world.crl(2.0),
                             to_datetime(2.0))
    assert ueid == client.device.ueid  # RFC 5280 path validation + the name-key binding


def test_enrolment_records_the_firmware_key_the_device_derived(world: World) -> None:
    """The key OTA content keys are wrapped for comes from the attested CSR: the device's own
    firmware-decryption key, public half only."""
    client = world.chip(11)
    world.service.enrol(world.request(client), 1.0)
    recorded = world.inventory.get(client.chip).firmware_key
    assert recorded == client.device.firmware_spki
    assert recorded != client.device.identity_spki
    key = serialization.load_der_public_key(recorded)
    assert key.public_numbers() == client.device.firmware_key().public_key().public_numbers()


def test_a_csr_whose_firmware_key_is_not_a_p256_key_is_refused(world: World) -> None:
    """The extension is signed with the CSR, but its content must still be a usable key."""
    client = world.chip(12)
    genuine = world.request(client)
    identity = client.device.slots.get("identity")
    bogus = x509.UnrecognizedExtension(x509.ObjectIdentifier(FIRMWARE_KEY_OID), b"\x30\x00")
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, client.chip)]))
           .add_extension(bogus, critical=False)
           .sign(identity, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    _refused(world, ProvisioningRequest(genuine.device, genuine.nonce, genuine.token, csr),
             1.0, "csr")


def test_handle_answers_with_the_certificate_and_endpoint(world: World) -> None:
    client = world.chip(1)
    response = world.service.handle(world.request(client), 1.0)
    assert response.accepted and response.endpoint == "mqtts://broker:8883"
    assert client.accept(response).serial_number == world.inventory.get(client.chip) \
        .certificate_serial


# ---------------------------------------------------------------- attacks


def test_attack_enrolment_replay_is_refused(world: World) -> None:
    """A captured request (token over a used nonce) sent again, after the genuine one."""
    client = world.chip(2)
    captured = world.request(client)
    world.service.enrol(captured, 1.0)
    _refused(world, captured, 2.0, "attestation", cause="nonce")


def test_attack_replayed_token_with_a_fresh_nonce_claim_is_refused(world: World) -> None:
    """The old token inside a request claiming a new nonce: the token answers another one."""
    client = world.chip(3)
    old = world.request(client)
    world.service.enrol(old, 1.0)
    fresh = world.service.challenge(client.chip, world.rng, 2.0)
    replay = ProvisioningRequest(old.device, fresh, old.token, client.device.csr(TENANT))
    _refused(world, replay, 2.0, "malformed")


def test_attack_csr_key_substitution_is_refused(world: World) -> None:
    """A genuine token, intercepted, with a CSR for the attacker's own (valid) key."""
    client = world.chip(4)
    genuine = world.request(client)
    attacker = p256_private_key(IKM, b"attacker")
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, client.chip)]))
           .sign(attacker, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    forged = ProvisioningRequest(genuine.device, genuine.nonce, genuine.token, csr)
    _refused(world, forged, 1.0, "key_mismatch")
    # Refused before the verifier was asked: the genuine device's nonce is still good.
    assert world.service.enrol(genuine, 1.5).device == client.chip


def test_attack_another_devices_csr_without_its_key_is_refused(world: World) -> None:
    """A CSR whose signature does not verify: no proof of possession (RFC 2986 3)."""
    client = world.chip(5)
    genuine = world.request(client)
    broken = bytearray(genuine.csr)
    broken[-5] ^= 0x01  # inside the signature
    _refused(world, ProvisioningRequest(genuine.device, genuine.nonce, genuine.token,
                                        bytes(broken)), 1.0, "csr")


def test_attack_unknown_chip_is_refused(world: World) -> None:
    """A chip that was never registered (a counterfeit, or a clone of the design)."""
    registered = world.chip(6)
    stranger = world.chip(7, register=False)
    with pytest.raises(EnrolmentError) as caught:
        world.service.challenge(stranger.chip, world.rng, 1.0)
    assert caught.value.reason == "unknown_chip"
    # With a nonce obtained for a registered chip, the stranger's own request is still refused.
    nonce = world.service.challenge(registered.chip, world.rng, 1.0)
    _refused(world, stranger.request(nonce, 1.0), 1.0, "unknown_chip")


def test_attack_unknown_chip_claiming_a_registered_chip_is_refused(world: World) -> None:
    """A stranger naming a registered chip: its token does not name its CSR's... own chip."""
    victim = world.chip(8)
    stranger = world.chip(9, register=False)
    nonce = world.service.challenge(victim.chip, world.rng, 1.0)
    own = stranger.request(nonce, 1.0)
    _refused(world, ProvisioningRequest(victim.chip, own.nonce, own.token, own.csr), 1.0,
             "attestation", cause="signature")


def test_attack_revoked_chip_re_enrolling_is_refused(world: World) -> None:
    client = world.chip(10)
    world.service.enrol(world.request(client), 1.0)
    assert world.service.revocations is not None
    revoke(world.inventory, world.service.revocations, [client.chip], 2.0, to_datetime(2.0))
    _refused(world, world.request(client, 3.0), 3.0, "revoked")


def test_a_quarantined_chip_gets_no_fresh_credentials(world: World) -> None:
    client = world.chip(11)
    world.service.enrol(world.request(client), 1.0)
    world.inventory.fire(client.chip, Event.ACTIVATE, 1.5)
    world.inventory.fire(client.chip, Event.QUARANTINE, 2.0)
    _refused(world, world.request(client, 3.0), 3.0, "quarantined")


def test_an_expired_nonce_is_refused(world: World) -> None:
    client = world.chip(12)
    late = world.request(client, 1.0)
    _refused(world, late, 1.0 + 61.0, "attestation", cause="nonce")


# ---------------------------------------------------------------- renewal and rotation


def test_renewal_with_a_fresh_csr_before_expiry(world: World) -> None:
    client = world.chip(13)
    first = world.service.enrol(world.request(client), 1.0)
    client.certificate = first.certificate
    day = 86_400.0
    assert not client.renewal_due(4 * day)  # 7-day certificate, 2-day window
    assert client.renewal_due(5.1 * day)
    renewed = world.service.enrol(world.request(client, 5.1 * day), 5.1 * day)
    assert renewed.kind is Kind.RENEW and renewed.device == first.device
    assert renewed.serial != first.serial
    record = world.inventory.get(client.chip)
    assert (record.state, record.certificate_serial) == (State.ONBOARDED, renewed.serial)
    assert world.inventory.audit(client.chip)[-1].event == "renew"
    crl = world.crl(5.2 * day)
    for cert in (first.certificate, renewed.certificate):  # the old one simply expires
        pki.verify_device(cert, world.service.issuing.certificate, world.root.certificate,
                          crl, to_datetime(5.2 * day))


def test_rotation_to_the_next_derivation_index_supersedes_the_old_certificate(
        world: World) -> None:
    client = world.chip(14)
    old = world.service.enrol(world.request(client), 1.0)
    iak = client.device.attestation_spki
    assert isinstance(client.device, QdidDevice)
    client.device.rotate_identity()
    client.device.boot(NOMINAL, np.random.default_rng(3), FIRMWARE)
    assert client.device.attestation_spki == iak  # the chip's attestation key is for life
    new = world.service.enrol(world.request(client, 10.0), 10.0)
    assert new.kind is Kind.ROTATE and new.device != old.device
    assert new.superseded == old.device and new.crl is not None
    record = world.inventory.get(client.chip)
    assert (record.device, record.certificate_serial) == (new.device, new.serial)
    issuing, root = world.service.issuing.certificate, world.root.certificate
    assert pki.verify_device(new.certificate, issuing, root, new.crl, to_datetime(11.0)).hex \
        == new.device
    with pytest.raises(CertificateRejected, match="revoked"):
        pki.verify_device(old.certificate, issuing, root, new.crl, to_datetime(11.0))


def test_attack_rotating_back_to_a_superseded_key_is_refused(world: World) -> None:
    """Someone sets the device's (public) derivation index back to 0 so that a key it was
    rotated away from, perhaps a leaked one, would be certified again."""
    client = world.chip(27)
    world.service.enrol(world.request(client), 1.0)
    assert isinstance(client.device, QdidDevice)
    client.device.rotate_identity()
    client.device.boot(NOMINAL, np.random.default_rng(3), FIRMWARE)
    world.service.enrol(world.request(client, 10.0), 10.0)
    client.device.flash.write("rot/index", (0).to_bytes(4, "big"))
    client.device.boot(NOMINAL, np.random.default_rng(4), FIRMWARE)
    _refused(world, world.request(client, 20.0), 20.0, "superseded")


# ---------------------------------------------------------------- revocation


def test_batch_revocation_lists_every_serial_with_a_rising_crl_number(world: World) -> None:
    clients = [world.chip(n) for n in (15, 16, 17)]
    issued = [world.service.enrol(world.request(c), 1.0) for c in clients]
    assert world.service.revocations is not None
    first = revoke(world.inventory, world.service.revocations, [clients[0].chip], 2.0,
                   to_datetime(2.0))
    batch = revoke(world.inventory, world.service.revocations,
                   [c.chip for c in clients[1:]], 3.0, to_datetime(3.0), "keyCompromise")
    assert batch.crl_number == first.crl_number + 1
    assert batch.devices == tuple(e.device for e in issued[1:])
    assert {r.serial_number for r in batch.crl} == {e.serial for e in issued}
    assert all(world.inventory.get(c.chip).state is State.REVOKED for c in clients)


def test_a_batch_with_one_unrevocable_chip_revokes_nothing(world: World) -> None:
    good, gone = world.chip(18), world.chip(19)
    world.service.enrol(world.request(good), 1.0)
    world.inventory.fire(gone.chip, Event.DECOMMISSION, 1.0)
    before = _snapshot(world.inventory)
    assert world.service.revocations is not None
    number = world.service.revocations.number
    with pytest.raises(InventoryError, match="decommissioned"):
        revoke(world.inventory, world.service.revocations, [good.chip, gone.chip], 2.0,
               to_datetime(2.0))
    assert _snapshot(world.inventory) == before
    assert world.service.revocations.number == number and len(world.service.revocations) == 0


def test_revocation_list_resumes_from_the_crl_on_file(world: World) -> None:
    revocations = RevocationList(world.service.issuing, [(42, to_datetime(0))], number=6)
    crl = revocations.publish(to_datetime(1.0))
    resumed = RevocationList.from_crl(world.service.issuing, crl)
    assert resumed.number == 7 and 42 in resumed
    other = pki.make_issuing(world.root, p256_private_key(IKM, b"other"), "x", to_datetime(0))
    with pytest.raises(InventoryError):
        RevocationList.from_crl(other, crl)


# ---------------------------------------------------------------- over the prov topics


def _exchange(world: World, client: EnrolmentClient, now: float = 1.0) -> list[object]:
    """Route Publish effects between the two cores until both are quiet (a fake link)."""
    pending = [e for e in client.start() if isinstance(e, Publish)]
    seen: list[object] = []
    while pending:
        message = pending.pop(0)
        if message.topic == client.request_topic:
            effects: list[object] = list(on_prov_message(world.service, message.topic,
                                                         message.payload, world.rng, now))
        else:
            effects = list(client.on_message(message.topic, message.payload, now))
        seen += effects
        pending += [e for e in effects if isinstance(e, Publish)]
    return seen


def test_the_mqtt_exchange_enrols_over_the_prov_topics(world: World) -> None:
    client = world.chip(20)
    seen = _exchange(world, client)
    assert client.phase is Phase.ENROLLED and client.endpoint == "mqtts://broker:8883"
    topics = [e.topic for e in seen if isinstance(e, Publish)]
    assert topics == [client.response_topic, client.request_topic, client.response_topic]
    assert [e.name for e in seen if isinstance(e, Notice)] == ["enrolled", "enrolled"]
    assert world.inventory.get(client.chip).state is State.ONBOARDED


def test_the_mqtt_exchange_reports_a_refusal_to_both_sides(world: World) -> None:
    client = world.chip(21)
    world.inventory.fire(client.chip, Event.REVOKE, 0.5)
    seen = _exchange(world, client)
    assert client.phase is Phase.REFUSED and client.reason == "revoked"
    notices = {(e.source, e.name) for e in seen if isinstance(e, Notice)}
    assert notices == {("platform", "enrol_refused"), ("device", "enrol_failed")}


def test_the_device_refuses_a_certificate_for_another_key(world: World) -> None:
    client, other = world.chip(22), world.chip(23)
    theirs = world.service.enrol(world.request(other), 1.0)
    request = world.request(client)
    with pytest.raises(EnrolmentFailed) as caught:
        client.accept(ProvisioningResponse(client.chip, request.nonce, True, theirs.pem, "x"))
    assert caught.value.reason == "certificate" and client.certificate is None


@pytest.mark.parametrize("payload", [b"", b"\xff" * 40, codec.encode(ProvisioningResponse(
    "01" + "00" * 16, b"", True))])
def test_bad_bytes_on_the_request_topic_give_a_notice_not_an_exception(
        world: World, payload: bytes) -> None:
    client = world.chip(24)
    effects = on_prov_message(world.service, client.request_topic, payload, world.rng, 1.0)
    assert [type(e) for e in effects] == [Notice]
    assert world.inventory.get(client.chip).state is State.REGISTERED


def test_a_request_on_another_devices_topic_is_not_answered(world: World) -> None:
    client, other = world.chip(25), world.chip(26)
    hello = codec.encode(ProvisioningRequest(client.chip, b"", b"", b""))
    effects = on_prov_message(world.service, other.request_topic, hello, world.rng, 1.0)
    assert [type(e) for e in effects] == [Notice]
