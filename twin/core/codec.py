"""The wire codec: messages <-> CBOR (RFC 8949) bytes.

Each payload is one CBOR map ``{"v": 1, "m": <type>, ...fields}``: ``v`` is the schema
version, ``m`` names the message type, and the other keys are short names for the fields of
:mod:`twin.core.messages`. Decoding is the trust boundary for a peer's bytes, so it is total:
:func:`decode` returns a valid message or raises :class:`~twin.core.errors.DecodeError`,
never anything else (a Hypothesis test holds it to that), and it checks every field's type and
range, the schema version, the size, and that no bytes trail the map.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

import cbor2

from twin.core.errors import DecodeError, brief
from twin.core.identity import is_device_id
from twin.core.messages import (
    METRICS,
    SCHEMA_VERSION,
    Command,
    DeviceEvent,
    FirmwareOffer,
    Kind,
    Message,
    ProvisioningRequest,
    ProvisioningResponse,
    Strip,
    Telemetry,
)

MAX_PAYLOAD: Final = 256 * 1024
MAX_SEQ: Final = 2**63 - 1
_MAX_NAME: Final = 64
_MAX_ITEMS: Final = 32
_MAX_BLOB: Final = 64 * 1024
_MAX_INT: Final = 2**64
_KINDS: Final[Mapping[Any, Kind]] = {k.value: k for k in Kind}

Check = Callable[[Any, str], Any]


def _fail(path: str, why: str) -> DecodeError:
    return DecodeError(f"{path}: {why}")



def _device(v: Any, path: str) -> str:
    if not is_device_id(v):
        raise _fail(path, "not a device UEID")
    return str(v)


def _seq(v: Any, path: str) -> int:
    if type(v) is not int or not 0 <= v <= MAX_SEQ:
        raise _fail(path, "sequence number must be an integer in 0..2**63-1")
    return v


def _number(v: Any, path: str) -> float:
    t = type(v)
    if t is float:
        if math.isfinite(v):
            return v  # type: ignore[no-any-return]
    elif t is int and -_MAX_INT <= v <= _MAX_INT:
        return float(v)
    raise _fail(path, "must be a finite number")


def _time(v: Any, path: str) -> float:
    t = _number(v, path)
    if t < 0:
        raise _fail(path, "time must be >= 0")
    return t


def _fraction(v: Any, path: str) -> float:
    x = _number(v, path)
    if not 0.0 <= x <= 1.0:
        raise _fail(path, "must be within 0..1")
    return x


def _opt_number(v: Any, path: str) -> float | None:
    return None if v is None else _number(v, path)


def _name(v: Any, path: str) -> str:
    if type(v) is not str or not 0 < len(v) <= _MAX_NAME:
        raise _fail(path, f"must be a string of 1..{_MAX_NAME} characters")
    return v


def _text(v: Any, path: str) -> str:
    if type(v) is not str or len(v) > 1024:
        raise _fail(path, "must be a string of at most 1024 characters")
    return v


def _blob(v: Any, path: str) -> bytes:
    if type(v) is not bytes or len(v) > _MAX_BLOB:
        raise _fail(path, f"must be a byte string of at most {_MAX_BLOB} bytes")
    return v


def _bool(v: Any, path: str) -> bool:
    if type(v) is not bool:
        raise _fail(path, "must be true or false")
    return v


def _kind(v: Any, path: str) -> Kind:
    kind = _KINDS.get(v) if type(v) is str else None
    if kind is None:
        raise _fail(path, f"unknown device kind {brief(v)}")
    return kind


def _rate(v: Any, path: str) -> float:
    x = _number(v, path)
    if not 0.0 < x <= 100_000.0:
        raise _fail(path, "must be a rate in (0, 100000] Hz")
    return x


def _lsb(v: Any, path: str) -> float:
    x = _number(v, path)
    if not 0.0 < x <= 1.0:
        raise _fail(path, "must be a step in (0, 1] per count")
    return x


def _int16s(v: Any, path: str) -> bytes:
    b = _blob(v, path)
    if not b or len(b) % 2:
        raise _fail(path, "must be a non-empty run of int16 samples (even length)")
    return b


def _values(v: Any, path: str) -> dict[str, float]:
    if type(v) is not dict or len(v) > _MAX_ITEMS:
        raise _fail(path, f"must be a map of at most {_MAX_ITEMS} metrics")
    out = {}
    for name, value in v.items():
        if type(name) is not str or name not in METRICS:
            raise _fail(path, f"unknown metric {brief(name)}")
        out[name] = _number(value, f"{path}.{name}")
    return out


def _flags(v: Any, path: str) -> tuple[str, ...]:
    if type(v) is not list or len(v) > _MAX_ITEMS:
        raise _fail(path, f"must be a list of at most {_MAX_ITEMS} flags")
    return tuple(_name(f, f"{path}[{i}]") for i, f in enumerate(v))


def _detail(v: Any, path: str) -> dict[str, str | int | float]:
    if type(v) is not dict or len(v) > _MAX_ITEMS:
        raise _fail(path, f"must be a map of at most {_MAX_ITEMS} entries")
    out: dict[str, str | int | float] = {}
    for key, value in v.items():
        key = _name(key, f"{path} key")
        if type(value) is str:
            out[key] = _text(value, f"{path}.{key}")
        elif type(value) is int and abs(value) <= MAX_SEQ:
            out[key] = value
        else:
            out[key] = _number(value, f"{path}.{key}")
    return out


# type tag -> (class, ((wire key, attribute, check, required), ...))
_Spec = tuple[type, tuple[tuple[str, str, Check, bool], ...]]
_SPECS: Final[Mapping[str, _Spec]] = {
    "tm": (Telemetry, (
        ("d", "device", _device, True), ("s", "seq", _seq, True), ("t", "t", _time, True),
        ("k", "kind", _kind, True), ("x", "values", _values, True),
        ("b", "battery", _fraction, True), ("a", "score", _opt_number, False),
        ("f", "flags", _flags, False),
    )),
    "ev": (DeviceEvent, (
        ("d", "device", _device, True), ("s", "seq", _seq, True), ("t", "t", _time, True),
        ("n", "name", _name, True), ("x", "detail", _detail, False),
    )),
    "cm": (Command, (
        ("d", "device", _device, True), ("s", "seq", _seq, True), ("t", "t", _time, True),
        ("n", "name", _name, True), ("x", "args", _detail, False),
    )),
    "pq": (ProvisioningRequest, (
        ("d", "device", _device, True), ("o", "nonce", _blob, True),
        ("k", "token", _blob, True), ("c", "csr", _blob, True),
    )),
    "pr": (ProvisioningResponse, (
        ("d", "device", _device, True), ("o", "nonce", _blob, True),
        ("y", "accepted", _bool, True), ("c", "certificate", _blob, False),
        ("e", "endpoint", _text, False), ("r", "reason", _text, False),
    )),
    "sp": (Strip, (
        ("d", "device", _device, True), ("s", "seq", _seq, True), ("t", "t", _time, True),
        ("r", "fs", _rate, True), ("l", "lsb_mv", _lsb, True), ("x", "samples", _int16s, True),
        ("f", "flags", _flags, False), ("a", "score", _opt_number, False),
    )),
    "fw": (FirmwareOffer, (
        ("d", "device", _device, True), ("s", "seq", _seq, True), ("t", "t", _time, True),
        ("e", "envelope", _blob, True), ("w", "wrapped_key", _blob, True),
        ("c", "ciphertext", _blob, True),
    )),
}
_TAG_OF: Final[Mapping[type, str]] = {cls: tag for tag, (cls, _) in _SPECS.items()}


def _to_wire(value: Any) -> Any:
    if isinstance(value, Kind):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _encode_telemetry(m: Telemetry) -> bytes:
    """The hot path of :func:`encode` (one call per device window), same wire form."""
    wire: dict[str, Any] = {"v": SCHEMA_VERSION, "m": "tm", "d": m.device, "s": m.seq,
                            "t": m.t, "k": m.kind.value, "x": dict(m.values), "b": m.battery}
    if m.score is not None:
        wire["a"] = m.score
    if m.flags:
        wire["f"] = list(m.flags)
    return cbor2.dumps(wire)


def encode(message: Message) -> bytes:
    """Encode a message to CBOR bytes.

    Raises:
        TypeError: if ``message`` is not one of the project's message types (a bug, not input).
    """
    if type(message) is Telemetry:
        return _encode_telemetry(message)
    tag = _TAG_OF.get(type(message))
    if tag is None:
        raise TypeError(f"not a message: {type(message).__name__}")
    wire: dict[str, Any] = {"v": SCHEMA_VERSION, "m": tag}
    for key, attr, _check, required in _SPECS[tag][1]:
        value = getattr(message, attr)
        if required or value not in (None, (), {}, b"", ""):
            wire[key] = _to_wire(value)
    return cbor2.dumps(wire)


def _refuse_tag(*args: Any) -> Any:
    # cbor2's hook arguments differ between versions; find the tag among them.
    number = next((a.tag for a in args if isinstance(a, cbor2.CBORTag)), "?")
    raise DecodeError(f"CBOR tag {number} is not allowed in a payload")


def _refuser(number: int) -> Callable[..., Any]:
    def refuse(*_args: Any) -> Any:
        raise DecodeError(f"CBOR tag {number} is not allowed in a payload")

    return refuse


# The tags cbor2 decodes itself (dates, bignums, shared references, sets, ...), found by
# probing cbor2 6.3; the payload grammar has no tags, and shared references (28/29) would let
# a few hundred bytes expand into an exponentially large structure.
_BUILTIN_TAGS: Final = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258,
                        260, 261, 1004, 43000, 55799)
_NO_SEMANTICS: Final = {number: _refuser(number) for number in _BUILTIN_TAGS}
_MAX_DEPTH: Final = 8


def _load(data: bytes) -> Any:
    stream = io.BytesIO(data)
    try:
        obj = cbor2.CBORDecoder(
            stream, tag_hook=_refuse_tag, semantic_decoders=_NO_SEMANTICS, max_depth=_MAX_DEPTH,
            allow_duplicate_keys=False, strict_hashable_types=True, allow_indefinite=False,
        ).decode()
    except DecodeError:
        raise
    except Exception as exc:  # a peer's bytes must never escape as a library error
        # cbor2 wraps what a hook raised in its own error; surface our refusal.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, DecodeError):
            raise DecodeError(str(cause)) from None
        raise DecodeError(f"payload is not well-formed CBOR ({type(exc).__name__})") from None
    if stream.tell() != len(data):
        raise DecodeError(f"{len(data) - stream.tell()} bytes trail the CBOR item")
    return obj


_TM_REQUIRED: Final = frozenset({"v", "m", "d", "s", "t", "k", "x", "b"})
_TM_KEYS: Final = _TM_REQUIRED | {"a", "f"}


def _decode_telemetry(obj: dict[str, Any]) -> Telemetry:
    """The hot path of :func:`decode` for a telemetry map whose keys are all known.

    The checks are the ones :data:`_SPECS` lists for ``"tm"``, called directly.
    """
    p = "tm."
    return Telemetry(
        _device(obj["d"], p + "device"), _seq(obj["s"], p + "seq"), _time(obj["t"], p + "t"),
        _kind(obj["k"], p + "kind"), _values(obj["x"], p + "values"),
        _fraction(obj["b"], p + "battery"),
        _opt_number(obj["a"], p + "score") if "a" in obj else None,
        _flags(obj["f"], p + "flags") if "f" in obj else (),
    )


def decode(data: bytes) -> Message:
    """Decode CBOR bytes into a message, checking every field.

    Args:
        data: the payload as received from a peer.

    Returns:
        The message.

    Raises:
        DecodeError: naming the field and the reason, for anything that is not a valid
            message of this schema version.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("payload must be bytes")
    if len(data) > MAX_PAYLOAD:
        raise DecodeError(f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD}")
    obj = _load(bytes(data))
    if type(obj) is not dict:
        raise DecodeError("payload is not a CBOR map")
    if obj.get("v") != SCHEMA_VERSION or type(obj.get("v")) is not int:
        raise DecodeError(f"v: unsupported schema version {brief(obj.get('v'))}")
    tag = obj.get("m")
    spec = _SPECS.get(tag) if type(tag) is str else None
    if spec is None:
        raise DecodeError(f"m: unknown message type {brief(tag)}")
    if tag == "tm" and obj.keys() >= _TM_REQUIRED and obj.keys() <= _TM_KEYS:
        return _decode_telemetry(obj)
    cls, fields = spec
    known = {"v", "m"} | {key for key, *_ in fields}
    extra = [k for k in obj if k not in known]
    if extra:
        raise DecodeError(f"{tag}: unknown field {brief(extra[0])}")
    kwargs = {}
    for key, attr, check, required in fields:
        if key in obj:
            kwargs[attr] = check(obj[key], f"{tag}.{attr}")
        elif required:
            raise DecodeError(f"{tag}.{attr}: missing")
    return cls(**kwargs)  # type: ignore[no-any-return]
