"""The provisioned fleet's identities, read back from a run directory for the live driver.

:func:`twin.platform.provision` writes ``DIR/devices/<id>/{cert,key,device}.*``: each device's
identity (its UEID, the certificate's CN) and key come from its QDID PUF. The live fleet's
cores must use exactly these identities, so the driver places them on the scenario's device
slots (fleet order: kinds in :class:`~twin.core.messages.Kind` order), preferring a device
provisioned as the slot's kind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from twin.core.errors import MedtwinError


class LiveError(MedtwinError):
    """A live run cannot start or finish (unsupported scenario, broker or fleet not ready)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """One provisioned device: its UEID, provisioned kind and credential files."""

    device: str
    kind: str
    number: int
    cert: Path
    key: Path


def read_tenant(run_dir: Path) -> str:
    """The tenant a provisioned fleet belongs to (``platform.json``).

    Raises:
        LiveError: ``run_dir`` holds no readable ``platform.json``.
    """
    try:
        return str(json.loads((run_dir / "platform.json").read_text())["tenant"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LiveError(f"{run_dir}: not a provisioned fleet ({exc})") from None


def read_identities(run_dir: Path) -> list[Identity]:
    """The devices provisioned in ``run_dir``, in provisioning (chip number) order.

    Raises:
        LiveError: a device folder is missing a file or has an unreadable ``device.json``.
    """
    found: list[Identity] = []
    for folder in sorted((run_dir / "devices").iterdir()):
        try:
            doc = json.loads((folder / "device.json").read_text())
            ident = Identity(str(doc["id"]), str(doc["kind"]), int(doc["chip_number"]),
                             folder / "cert.pem", folder / "key.pem")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LiveError(f"{folder}: not a provisioned device ({exc})") from None
        if not (ident.cert.is_file() and ident.key.is_file()):
            raise LiveError(f"{folder}: cert.pem or key.pem missing")
        found.append(ident)
    return sorted(found, key=lambda i: i.number)


def assign(slots: Sequence[str], identities: Sequence[Identity]) -> list[Identity]:
    """Give every fleet slot (its kind) a provisioned identity, same kind first.

    Args:
        slots: the kind of each device of the scenario's fleet, in fleet order.
        identities: the provisioned devices (at least as many as slots).

    Returns:
        One identity per slot; each used once.

    Raises:
        LiveError: fewer identities than slots.
    """
    if len(identities) < len(slots):
        raise LiveError(f"{len(identities)} devices provisioned for {len(slots)} slots")
    free = list(identities)
    out: list[Identity | None] = [None] * len(slots)
    for i, kind in enumerate(slots):  # same kind first, in provisioning order
        match = next((x for x in free if x.kind == kind), None)
        if match is not None:
            free.remove(match)
            out[i] = match
    for i, got in enumerate(out):  # then whatever is left
        if got is None:
            out[i] = free.pop(0)
    return [x for x in out if x is not None]
