"""The wire codec: round trips, and "decodes, or raises DecodeError, nothing else".

House style 9: Hypothesis holds the codec to totality over arbitrary bytes and over structured
CBOR near-misses (valid messages with one field removed, replaced or added), and every
specific refusal names the field it refused.

Length: over 400 lines on purpose; it is the codec's whole contract (totality, round trips,
and one refusal per field), which reads best in one place beside twin/core/codec.py.
"""

from __future__ import annotations

import math
import tracemalloc
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.core.codec import MAX_PAYLOAD, MAX_SEQ, decode, encode
from twin.core.errors import DecodeError, MedtwinError
from twin.core.identity import Ueid
from twin.core.messages import (
    KIND_METRICS,
    METRICS,
    SCHEMA_VERSION,
    Command,
    DeviceEvent,
    FirmwareOffer,
    Kind,
    ProvisioningRequest,
    ProvisioningResponse,
    Strip,
    Telemetry,
)

MESSAGE_TYPES = (Telemetry, DeviceEvent, Command, ProvisioningRequest, ProvisioningResponse,
                 FirmwareOffer, Strip)
DEVICE = "01" + "ab" * 16
WIRE_KEYS = ("v", "m", "d", "s", "t", "k", "x", "b", "a", "f", "n", "o", "c", "y", "e", "r",
             "w", "l")
TAGS = ("tm", "ev", "cm", "pq", "pr", "fw", "sp")

# ---------------------------------------------------------------- strategies

devices = st.binary(min_size=16, max_size=16).map(lambda b: Ueid.from_random(b).hex)
seqs = st.integers(min_value=0, max_value=MAX_SEQ)
times = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
finite = st.floats(allow_nan=False, allow_infinity=False)
names = st.text(min_size=1, max_size=64)
blobs = st.binary(max_size=256)
texts = st.text(max_size=1024)
detail_values = st.one_of(
    st.text(max_size=64), st.integers(min_value=-MAX_SEQ, max_value=MAX_SEQ), finite
)
details = st.dictionaries(names, detail_values, max_size=32)

telemetry = st.builds(
    Telemetry,
    device=devices,
    seq=seqs,
    t=times,
    kind=st.sampled_from(Kind),
    values=st.dictionaries(st.sampled_from(sorted(METRICS)), finite, max_size=len(METRICS)),
    battery=st.floats(min_value=0.0, max_value=1.0),
    score=st.none() | finite,
    flags=st.lists(st.text(min_size=1, max_size=16), max_size=32).map(tuple),
)
device_events = st.builds(DeviceEvent, device=devices, seq=seqs, t=times, name=names,
                          detail=details)
commands = st.builds(Command, device=devices, seq=seqs, t=times, name=names, args=details)
prov_requests = st.builds(ProvisioningRequest, device=devices, nonce=blobs, token=blobs,
                          csr=blobs)
prov_responses = st.builds(
    ProvisioningResponse,
    device=devices,
    nonce=blobs,
    accepted=st.booleans(),
    certificate=blobs,
    endpoint=texts,
    reason=texts,
)
firmware_offers = st.builds(FirmwareOffer, device=devices, seq=seqs, t=times, envelope=blobs,
                            wrapped_key=blobs, ciphertext=blobs)
strips = st.builds(
    Strip, device=devices, seq=seqs, t=times,
    fs=st.floats(min_value=1e-3, max_value=100_000.0),
    lsb_mv=st.floats(min_value=1e-6, max_value=1.0),
    samples=st.binary(min_size=1, max_size=128).map(lambda b: b + b),  # even length
    flags=st.lists(st.text(min_size=1, max_size=16), max_size=4).map(tuple),
    score=st.none() | finite,
)
messages = st.one_of(telemetry, device_events, commands, prov_requests, prov_responses,
                     firmware_offers, strips)

# Beyond float range, but under the 4300-digit limit on int repr() that Hypothesis needs to
# print a falsifying example (longer ints are covered by explicit tests below).
HUGE_INTS = (2**64, -(2**64) - 1, 2**1024, 2**1100, -(2**1100), 10**4000)
cbor_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(HUGE_INTS),
    st.floats(),  # includes nan, inf, -inf, -0.0
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308]),
    st.text(max_size=70),
    st.binary(max_size=70),
    st.sampled_from(WIRE_KEYS + TAGS + (DEVICE, "ecg_patch", *METRICS)),
)
cbor_keys = st.one_of(
    st.sampled_from(WIRE_KEYS), st.text(max_size=8), st.integers(), st.sampled_from(HUGE_INTS)
)
cbor_values = st.recursive(
    cbor_leaves,
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(cbor_keys, children, max_size=6),
    max_leaves=24,
)

# ---------------------------------------------------------------- helpers


def _assert_total(data: bytes) -> None:
    """decode returns one of our messages or raises DecodeError: anything else is a bug."""
    try:
        result = decode(data)
    except DecodeError:
        return
    except Exception as exc:  # the catch-all this test exists for
        pytest.fail(f"decode({data[:64]!r}...) raised {type(exc).__name__}: {exc!s:.200}")
    assert isinstance(result, MESSAGE_TYPES)


def _wire(message: Any) -> dict[Any, Any]:
    obj = cbor2.loads(encode(message))
    assert isinstance(obj, dict)
    return obj


def _valid_wire(**changes: Any) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "v": 1, "m": "tm", "d": DEVICE, "s": 7, "t": 12.5, "k": "ecg_patch",
        "x": {"hr_bpm": 61.0}, "b": 0.75,
    }
    wire.update(changes)
    return wire


def _refusal(obj: Any, **dumps_kwargs: Any) -> str:
    with pytest.raises(DecodeError) as info:
        decode(cbor2.dumps(obj, **dumps_kwargs))
    return str(info.value)


# ---------------------------------------------------------------- (a) totality


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    _assert_total(data)


@settings(max_examples=500, deadline=None)
@given(messages, st.binary(min_size=1, max_size=64), st.integers(min_value=0))
def test_corrupted_valid_payloads_decode_or_raise_decode_error(
    message: Any, noise: bytes, where: int
) -> None:
    data = bytearray(encode(message))
    i = where % len(data)
    for variant in (
        bytes(data[:i]),  # truncated
        bytes(data[:i] + noise + data[i:]),  # inserted
        bytes(data[:i] + noise + data[i + len(noise):]),  # overwritten
        bytes(data) + noise,  # trailing
    ):
        _assert_total(variant)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cbor_values)
def test_arbitrary_cbor_values_decode_or_raise_decode_error(value: Any) -> None:
    _assert_total(cbor2.dumps(value))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(cbor_keys, cbor_values, max_size=10),
    st.sampled_from([1, 2, 0, None, True, 1.0]),
    st.sampled_from((*TAGS, "zz", None)),
)
def test_arbitrary_maps_with_header_decode_or_raise_decode_error(
    body: dict[Any, Any], v: Any, m: Any
) -> None:
    _assert_total(cbor2.dumps({"v": v, "m": m, **body}))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.data())
def test_valid_messages_with_one_field_mutated_decode_or_raise_decode_error(
    message: Any, data: st.DataObject
) -> None:
    wire = _wire(message)
    action = data.draw(st.sampled_from(["remove", "replace", "add"]))
    if action == "remove":
        del wire[data.draw(st.sampled_from(sorted(wire)))]
    elif action == "replace":
        wire[data.draw(st.sampled_from(sorted(wire)))] = data.draw(cbor_values)
    else:
        wire[data.draw(cbor_keys)] = data.draw(cbor_values)
    _assert_total(cbor2.dumps(wire))


@settings(max_examples=500, deadline=None)
@given(telemetry, st.sampled_from(sorted(METRICS)), cbor_leaves)
def test_telemetry_with_one_metric_value_mutated_decodes_or_raises(
    message: Telemetry, metric: str, value: Any
) -> None:
    wire = _wire(message)
    wire["x"] = {**wire["x"], metric: value}
    _assert_total(cbor2.dumps(wire))


# ---------------------------------------------------------------- (b) round trip


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip(message: Any) -> None:
    data = encode(message)
    back = decode(data)
    assert type(back) is type(message)
    assert back == message
    assert encode(back) == data


@pytest.mark.parametrize("cls", MESSAGE_TYPES)
def test_every_message_type_round_trips_with_defaults(cls: type) -> None:
    base: dict[str, Any] = {
        Telemetry: {"seq": 0, "t": 0.0, "kind": Kind.ECG_PATCH, "values": {}, "battery": 0.0},
        DeviceEvent: {"seq": 0, "t": 0.0, "name": "booted"},
        Command: {"seq": MAX_SEQ, "t": 1e9, "name": "quarantine"},
        ProvisioningRequest: {"nonce": b"", "token": b"", "csr": b""},
        ProvisioningResponse: {"nonce": b"n", "accepted": False},
        FirmwareOffer: {"seq": 1, "t": 2.0, "envelope": b"e", "wrapped_key": b"w",
                        "ciphertext": b""},
        Strip: {"seq": 4, "t": 10.0, "fs": 250.0, "lsb_mv": 0.005, "samples": b"\x01\x00"},
    }[cls]
    message = cls(device=DEVICE, **base)
    assert decode(encode(message)) == message


@pytest.mark.parametrize("kind", list(Kind))
def test_each_kind_with_its_metrics_round_trips(kind: Kind) -> None:
    values = {name: 1.5 * (i + 1) for i, name in enumerate(KIND_METRICS[kind])}
    message = Telemetry(DEVICE, 3, 60.0, kind, values, 1.0, score=0.25, flags=("anomaly",))
    assert decode(encode(message)) == message


def test_every_payload_carries_schema_version_and_type_tag() -> None:
    message = Telemetry(DEVICE, 1, 2.0, Kind.BP_CUFF, {"sys_mmhg": 120.0}, 0.5)
    wire = _wire(message)
    assert wire["v"] == SCHEMA_VERSION == 1
    assert wire["m"] == "tm"


def test_encode_omits_default_optional_fields() -> None:
    wire = _wire(ProvisioningResponse(DEVICE, b"n", accepted=True))
    assert set(wire) == {"v", "m", "d", "o", "y"}
    wire = _wire(Telemetry(DEVICE, 1, 2.0, Kind.ECG_PATCH, {}, 0.5))
    assert "a" not in wire and "f" not in wire


def test_encode_refuses_non_messages() -> None:
    with pytest.raises(TypeError, match="not a message"):
        encode({"v": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_decode_accepts_bytes_like(wrap: Any) -> None:
    message = Command(DEVICE, 1, 2.0, "quarantine", {"minutes": 5})
    assert decode(wrap(encode(message))) == message


def test_largest_allowed_blobs_round_trip() -> None:
    blob = b"\x5a" * (64 * 1024)
    message = ProvisioningRequest(DEVICE, blob, blob, blob)
    assert decode(encode(message)) == message


# ---------------------------------------------------------------- (c) specific refusals


@pytest.mark.parametrize("v", [0, 2, -1, "1", 1.0, True, None, b"\x01"])
def test_wrong_schema_version_is_refused(v: Any) -> None:
    assert _refusal(_valid_wire(v=v)).startswith("v:")


def test_missing_schema_version_is_refused() -> None:
    wire = _valid_wire()
    del wire["v"]
    assert _refusal(wire).startswith("v:")


@pytest.mark.parametrize("m", ["zz", "TM", "", 1, None, b"tm", ["tm"]])
def test_unknown_message_type_is_refused(m: Any) -> None:
    assert _refusal(_valid_wire(m=m)).startswith("m:")


@pytest.mark.parametrize("key", ["zz", "device", "V", "vv"])
def test_unknown_field_is_refused_by_name(key: str) -> None:
    message = _refusal({**_valid_wire(), key: 0})
    assert "unknown field" in message
    assert repr(key) in message


@pytest.mark.parametrize("key", [1, -1, b"v", 1.5, None])
def test_non_text_keys_are_refused(key: Any) -> None:
    _refusal({**_valid_wire(), key: 0})


def test_field_of_another_message_type_is_unknown() -> None:
    assert "unknown field 'y'" in _refusal(_valid_wire(y=True))


@pytest.mark.parametrize("noise", [b"\x00", b"\xa0", encode(Command(DEVICE, 1, 1.0, "x"))])
def test_trailing_bytes_are_refused(noise: bytes) -> None:
    with pytest.raises(DecodeError, match="trail"):
        decode(encode(Command(DEVICE, 1, 1.0, "ping")) + noise)


def _names_field_or_tag(message: str, field: str) -> bool:
    """A tagged value is refused naming the field it sat in, or naming the tag as the reason."""
    return message.startswith(field) or "tag" in message.lower()


@pytest.mark.parametrize(
    ("key", "field"), [("t", "tm.t"), ("d", "tm.device"), ("s", "tm.seq"), ("k", "tm.kind")]
)
def test_semantic_cbor_tag_in_a_field_is_refused_naming_the_field(key: str, field: str) -> None:
    message = _refusal(_valid_wire(**{key: cbor2.CBORTag(1, 0)}))
    assert _names_field_or_tag(message, field), message


@pytest.mark.parametrize("seq", [2**64, 2**100, -(2**64) - 1])
def test_bignum_seq_is_refused_naming_the_field(seq: int) -> None:
    # Beyond 64 bits, CBOR carries integers as bignums (tags 2 and 3).
    message = _refusal(_valid_wire(s=seq))
    assert _names_field_or_tag(message, "tm.seq"), message


def test_cbor_tag_on_the_whole_payload_is_refused() -> None:
    with pytest.raises(DecodeError):
        decode(cbor2.dumps(cbor2.CBORTag(1, 0)))


def test_unknown_cbor_tag_is_refused_naming_the_tag() -> None:
    # codec._refuse_tag means to say "CBOR tag 4000 is not allowed in a payload".
    message = _refusal(_valid_wire(t=cbor2.CBORTag(4000, 0)))
    assert _names_field_or_tag(message, "tm.t"), message


def test_oversize_payload_is_refused_before_parsing() -> None:
    data = encode(Command(DEVICE, 1, 1.0, "x")) + b"\x00" * MAX_PAYLOAD
    with pytest.raises(DecodeError, match="exceeds"):
        decode(data)


@pytest.mark.parametrize("seq", [-1, MAX_SEQ + 1, 2**64 - 1, True, False, 1.0, "1", None])
def test_bad_seq_is_refused(seq: Any) -> None:
    assert _refusal(_valid_wire(s=seq)).startswith("tm.seq:")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "60", None, True, [60.0]])
def test_non_finite_or_non_numeric_metric_is_refused(value: Any) -> None:
    assert _refusal(_valid_wire(x={"hr_bpm": value})).startswith("tm.values.hr_bpm:")


@pytest.mark.parametrize("name", ["bogus", "HR_BPM", "", "hr_bpm "])
def test_unknown_metric_is_refused(name: str) -> None:
    message = _refusal(_valid_wire(x={name: 1.0}))
    assert message.startswith("tm.values:")
    assert "unknown metric" in message


def test_too_many_metrics_are_refused() -> None:
    values = {f"m{i}": 1.0 for i in range(33)}
    assert _refusal(_valid_wire(x=values)).startswith("tm.values:")


@pytest.mark.parametrize(
    "device",
    [
        "", "ab" * 17, "02" + "ab" * 16, "01" + "AB" * 16, "01" + "ab" * 15,
        "01" + "ab" * 17, b"\x01" + b"\xab" * 16, 1, None,
    ],
)
def test_device_that_is_not_a_ueid_is_refused(device: Any) -> None:
    assert _refusal(_valid_wire(d=device)).startswith("tm.device:")


def test_device_with_trailing_newline_is_refused() -> None:
    # identity._HEX ends in "$", which also matches before a final "\n".
    assert _refusal(_valid_wire(d=DEVICE + "\n")).startswith("tm.device:")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"t": -0.5}, "tm.t:"),
        ({"t": math.nan}, "tm.t:"),
        ({"t": "0"}, "tm.t:"),
        ({"b": 1.5}, "tm.battery:"),
        ({"b": -0.01}, "tm.battery:"),
        ({"b": math.nan}, "tm.battery:"),
        ({"k": "toaster"}, "tm.kind:"),
        ({"k": ["ecg_patch"]}, "tm.kind:"),
        ({"a": math.inf}, "tm.score:"),
        ({"a": "0.5"}, "tm.score:"),
        ({"f": ["ok", ""]}, "tm.flags[1]:"),
        ({"f": "anomaly"}, "tm.flags:"),
        ({"f": ["x"] * 33}, "tm.flags:"),
        ({"f": ["x" * 65]}, "tm.flags[0]:"),
        ({"x": [["hr_bpm", 60.0]]}, "tm.values:"),
    ],
)
def test_bad_telemetry_fields_are_refused_by_name(change: dict[str, Any], field: str) -> None:
    assert _refusal(_valid_wire(**change)).startswith(field)


@pytest.mark.parametrize("key", ["d", "s", "t", "k", "x", "b"])
def test_missing_required_telemetry_field_is_refused(key: str) -> None:
    wire = _valid_wire()
    del wire[key]
    message = _refusal(wire)
    assert message.startswith("tm.")
    assert message.endswith("missing")


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        ({"m": "ev", "n": ""}, "ev.name:"),
        ({"m": "ev", "n": "x" * 65}, "ev.name:"),
        ({"m": "ev", "n": "x", "x": {"": 1}}, "ev.detail key:"),
        ({"m": "ev", "n": "x", "x": {"k": [1]}}, "ev.detail.k:"),
        ({"m": "ev", "n": "x", "x": {"k": math.nan}}, "ev.detail.k:"),
        ({"m": "ev", "n": "x", "x": {"k": True}}, "ev.detail.k:"),
        ({"m": "ev", "n": "x", "x": {"k": "x" * 1025}}, "ev.detail.k:"),
        ({"m": "cm", "n": "x", "x": [1]}, "cm.args:"),
        ({"m": "cm", "n": "x", "x": {str(i): i for i in range(33)}}, "cm.args:"),
        ({"m": "cm", "n": 5}, "cm.name:"),
    ],
)
def test_bad_event_and_command_fields_are_refused_by_name(
    wire: dict[str, Any], field: str
) -> None:
    base = {"v": 1, "d": DEVICE, "s": 1, "t": 1.0}
    assert _refusal({**base, **wire}).startswith(field)


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        ({"m": "pq", "o": b"n", "k": b"t", "c": "csr"}, "pq.csr:"),
        ({"m": "pq", "o": b"n" * (64 * 1024 + 1), "k": b"t", "c": b"c"}, "pq.nonce:"),
        ({"m": "pq", "o": b"n", "c": b"c"}, "pq.token:"),
        ({"m": "pr", "o": b"n", "y": 1}, "pr.accepted:"),
        ({"m": "pr", "o": b"n", "y": None}, "pr.accepted:"),
        ({"m": "pr", "o": b"n", "y": True, "e": b"host"}, "pr.endpoint:"),
        ({"m": "pr", "o": b"n", "y": False, "r": "x" * 1025}, "pr.reason:"),
        ({"m": "pr", "o": b"n", "y": True, "d": "nope"}, "pr.device:"),
    ],
)
def test_bad_provisioning_fields_are_refused_by_name(wire: dict[str, Any], field: str) -> None:
    assert _refusal({"v": 1, "d": DEVICE, **wire}).startswith(field)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff", b"\x1f", b"\xbf", b"\x5f\x41", encode(Command(DEVICE, 1, 1.0, "x"))[:-1]],
)
def test_malformed_cbor_is_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)


@pytest.mark.parametrize("obj", [[], [1, 2], 1, "tm", b"\xa0", None, 1.5])
def test_payload_that_is_not_a_map_is_refused(obj: Any) -> None:
    assert "not a CBOR map" in _refusal(obj)


@pytest.mark.parametrize("data", ["\xa0", None, 0, [0xA0]])
def test_non_bytes_input_is_refused(data: Any) -> None:
    with pytest.raises(DecodeError, match="bytes"):
        decode(data)


def test_deeply_nested_payload_is_refused_not_a_recursion_error() -> None:
    _assert_total(b"\x81" * 100_000 + b"\x00")
    _assert_total(b"\xa1\x00" * 50_000 + b"\x00")


def test_decode_error_is_a_medtwin_error() -> None:
    assert issubclass(DecodeError, MedtwinError)


# ---------------------------------------------------------------- bugs found while testing


@pytest.mark.parametrize("key", ["t", "b", "a"])
def test_bignum_in_a_number_field_is_refused_not_an_overflow(key: str) -> None:
    # codec._number calls math.isfinite(v) on any int: a CBOR bignum beyond float range
    # raises OverflowError out of decode().
    _assert_total(cbor2.dumps(_valid_wire(**{key: 2**1100})))


def test_bignum_metric_value_is_refused_not_an_overflow() -> None:
    _assert_total(cbor2.dumps(_valid_wire(x={"hr_bpm": -(2**1100)})))


def test_bignum_detail_value_is_refused_not_an_overflow() -> None:
    wire = {"v": 1, "m": "cm", "d": DEVICE, "s": 1, "t": 1.0, "n": "x", "x": {"k": 2**1100}}
    _assert_total(cbor2.dumps(wire))


@pytest.mark.parametrize(
    "wire",
    [
        _valid_wire(v=10**5000),
        _valid_wire(m=10**5000),
        _valid_wire(k=10**5000),
        {**_valid_wire(), 10**5000: 0},
        _valid_wire(x={10**5000: 1.0}),
    ],
    ids=["v", "m", "kind", "unknown-key", "metric-name"],
)
def test_huge_integer_echoed_in_an_error_does_not_escape_as_value_error(
    wire: dict[Any, Any],
) -> None:
    # The error messages format the peer's value with !r; repr() of an int over 4300 digits
    # raises ValueError (Python's int/str conversion limit).
    _assert_total(cbor2.dumps(wire))


def _shared_bomb(depth: int) -> Any:
    node: Any = [0]
    for _ in range(depth):
        node = [node, node]
    return node


def test_shared_reference_bomb_is_refused_without_expanding_it() -> None:
    # CBOR value sharing (tags 28/29) makes a ~220-byte payload decode to a DAG with 2**20
    # leaves; the "unknown device kind {v!r:.32}" message repr()s all of it before
    # truncating, so a few hundred bytes cost seconds and megabytes (2**40: forever).
    data = cbor2.dumps(_valid_wire(k=_shared_bomb(20)), value_sharing=True)
    assert len(data) < 300
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"decode of a {len(data)}-byte payload peaked at {peak} bytes"


@pytest.mark.parametrize(("key", "value", "why"), [
    ("x", b"\x01", "even length"), ("x", b"", "even length"), ("r", 0.0, "rate"),
    ("r", -250.0, "rate"), ("l", 0.0, "per count"), ("l", 2.0, "per count"),
])
def test_strip_fields_are_checked(key: str, value: Any, why: str) -> None:
    wire = _wire(Strip(DEVICE, 1, 10.0, 250.0, 0.005, b"\x00\x00" * 4))
    wire[key] = value
    with pytest.raises(DecodeError, match=why):
        decode(cbor2.dumps(wire))
