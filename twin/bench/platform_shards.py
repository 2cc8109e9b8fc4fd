"""Enrolment on both cores: chips sharded across worker processes, one inventory writer.

A real platform scales enrolment the way any stateless-checks-plus-one-database service
does: the expensive, independent work (two ECDSA verifications and one ECDSA signature per
device) spreads over cores, and the database keeps a single writer. Here:

* **shards** (worker processes, one per core): each owns the chips ``number % shards ==
  index`` and runs the *unchanged* :class:`cloud.enrolment.EnrolmentService` over a
  :class:`cloud.inventory.JournalInventory` holding just those chips. A chip's challenge,
  its request, its admission, its audit trail and its nonce all live in one shard, so every
  check sees exactly the state it would see in a single process. Each shard holds the
  issuing CA's key (a real platform would ask an HSM; the signature is the same work).
* **the parent**: the single writer. It applies each shard's journal (records and audit
  events, exactly as the shard wrote them) to the SQLite inventory, one transaction per block.

The device side (manufacture, PUF boot, the token and CSR signatures) also runs in the
shards, *before* the timed phase and outside it, as it runs on the devices themselves.
Certificates are deterministic (RFC 6979 signatures, content-derived serials), so a fleet
enrolled here gets the certificates a single process would have issued.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud import pki
from cloud.inventory import JournalInventory, Row
from cloud.onboarding import Grants
from devices.enrolment import EnrolmentClient
from twin.core.messages import ProvisioningRequest
from twin.core.seeds import SeedTree
from twin.platform import Platform


@dataclass(frozen=True, slots=True)
class ShardConfig:
    """What every shard needs to act as the platform (PEM, so it crosses processes)."""

    seed: int
    tenant: str
    endpoint: str
    epoch: datetime
    validity: timedelta
    root_pem: bytes
    issuing_pem: bytes
    issuing_key_pem: bytes


@dataclass(frozen=True, slots=True)
class ShardResult:
    """One shard's enrolments of a block: the journal, the grants, and its CPU seconds."""

    rows: list[Row]
    grants: list[Grants]
    cpu_s: float


class _Shard:
    """A worker's part of the platform: its chips, their pending requests, its nonces."""

    def __init__(self, config: ShardConfig, index: int) -> None:
        key = serialization.load_pem_private_key(config.issuing_key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        issuing = pki.Authority(pki.load_pem_certificate(config.issuing_pem, "issuing"), key)
        root = pki.load_pem_certificate(config.root_pem, "root")
        self.inventory = JournalInventory()
        self.platform = Platform(root, issuing, self.inventory, config.tenant, config.endpoint,
                                 config.epoch, config.validity)
        self.tree = SeedTree(config.seed)
        self.rng = self.tree.rng("bench", "nonces", "shard", index)
        self.pending: list[ProvisioningRequest] = []

    def prepare(self, numbers: list[int]) -> list[Row]:
        """The factory and the devices: make, register and boot chips; each device asks for
        a challenge and signs its token and CSR. Returns the registration journal."""
        for number in numbers:
            made = self.platform.manufacture(self.tree, number, 0.0)
            client = EnrolmentClient(made.device, made.chip, self.platform.tenant)
            nonce = self.platform.service.challenge(made.chip, self.rng, 0.0)
            self.pending.append(client.request(nonce, 0.0))
        return self.inventory.take()

    def enrol(self) -> ShardResult:
        """The platform's work: every pending request through the enrolment service."""
        c0 = time.process_time()
        done = [self.platform.service.enrol(request, 1.0) for request in self.pending]
        self.pending = []
        return ShardResult(self.inventory.take(), [e.grants for e in done],
                           time.process_time() - c0)


_SHARD: _Shard | None = None


def _init(config: ShardConfig, index: int) -> None:
    global _SHARD  # one shard per worker process, for the worker's life
    _SHARD = _Shard(config, index)


def _prepare(numbers: list[int]) -> list[Row]:
    assert _SHARD is not None
    return _SHARD.prepare(numbers)


def _enrol() -> ShardResult:
    assert _SHARD is not None
    return _SHARD.enrol()


def _ready() -> bool:
    return _SHARD is not None


class EnrolmentShards:
    """``shards`` worker processes, each an enrolment service for its share of the chips.

    Args:
        config: the platform every shard acts as.
        shards: how many worker processes (one per core).
    """

    def __init__(self, config: ShardConfig, shards: int) -> None:
        context = multiprocessing.get_context("spawn")  # no inherited locks or threads
        self.count = shards
        self._pools = [ProcessPoolExecutor(1, context, _init, (config, index))
                       for index in range(shards)]
        for pool in self._pools:  # start the workers now, not inside a timed phase
            pool.submit(_ready).result()

    def prepare(self, numbers: range) -> list[Row]:
        """Manufacture and boot chips ``numbers`` in their shards (in parallel); their
        requests wait in the shards. Returns the registrations for the writer."""
        futures = [pool.submit(_prepare, [n for n in numbers if n % self.count == index])
                   for index, pool in enumerate(self._pools)]
        return [row for future in futures for row in future.result()]

    def enrol(self) -> list[ShardResult]:
        """Every shard enrols its pending requests (in parallel)."""
        futures = [pool.submit(_enrol) for pool in self._pools]
        return [future.result() for future in futures]

    def close(self) -> None:
        """Stop the worker processes."""
        for pool in self._pools:
            pool.shutdown()
