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

from twin.core.errors import DecodeError
from twin.core.identity import is_device_id
from twin.core.messages import (
    METRICS,
    SCHEMA_VERSION,
    Command,
    DeviceEvent,
    Kind,
    Message,
    ProvisioningRequest,
    ProvisioningResponse,
    Telemetry,
)

MAX_PAYLOAD: Final = 256 * 1024
MAX_SEQ: Final = 2**63 - 1
_MAX_NAME: Final = 64
_MAX_ITEMS: Final = 32
_MAX_BLOB: Final = 64 * 1024

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
    if type(v) not in (int, float) or not math.isfinite(v):
        raise _fail(path, "must be a finite number")
    return float(v)


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
    try:
        return Kind(v)
    except (ValueError, TypeError):
        raise _fail(path, f"unknown device kind {v!r:.32}") from None


def _values(v: Any, path: str) -> dict[str, float]:
    if type(v) is not dict or len(v) > _MAX_ITEMS:
        raise _fail(path, f"must be a map of at most {_MAX_ITEMS} metrics")
    out = {}
    for name, value in v.items():
        if type(name) is not str or name not in METRICS:
            raise _fail(path, f"unknown metric {name!r:.32}")
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


def encode(message: Message) -> bytes:
    """Encode a message to CBOR bytes.

    Raises:
        TypeError: if ``message`` is not one of the project's message types (a bug, not input).
    """
    tag = _TAG_OF.get(type(message))
    if tag is None:
        raise TypeError(f"not a message: {type(message).__name__}")
    wire: dict[str, Any] = {"v": SCHEMA_VERSION, "m": tag}
    for key, attr, _check, required in _SPECS[tag][1]:
        value = getattr(message, attr)
        if required or value not in (None, (), {}, b"", ""):
            wire[key] = _to_wire(value)
    return cbor2.dumps(wire)


def _refuse_tag(_decoder: Any, tag: Any) -> Any:
    raise DecodeError(f"CBOR tag {tag.tag} is not allowed in a payload")


def _load(data: bytes) -> Any:
    stream = io.BytesIO(data)
    try:
        obj = cbor2.CBORDecoder(stream, tag_hook=_refuse_tag).decode()
    except DecodeError:
        raise
    except Exception as exc:  # a peer's bytes must never escape as a library error
        raise DecodeError(f"payload is not well-formed CBOR ({type(exc).__name__})") from None
    if stream.tell() != len(data):
        raise DecodeError(f"{len(data) - stream.tell()} bytes trail the CBOR item")
    return obj


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
        raise DecodeError(f"v: unsupported schema version {obj.get('v')!r:.16}")
    tag = obj.get("m")
    spec = _SPECS.get(tag) if type(tag) is str else None
    if spec is None:
        raise DecodeError(f"m: unknown message type {tag!r:.16}")
    cls, fields = spec
    known = {"v", "m"} | {key for key, *_ in fields}
    extra = [k for k in obj if k not in known]
    if extra:
        raise DecodeError(f"{tag}: unknown field {extra[0]!r:.16}")
    kwargs = {}
    for key, attr, check, required in fields:
        if key in obj:
            kwargs[attr] = check(obj[key], f"{tag}.{attr}")
        elif required:
            raise DecodeError(f"{tag}.{attr}: missing")
    return cls(**kwargs)  # type: ignore[no-any-return]
