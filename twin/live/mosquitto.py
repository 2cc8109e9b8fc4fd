"""Debian's Mosquitto, started with the configuration the platform exported for a fleet.

``twin provision --out DIR`` writes ``DIR/broker/mosquitto.conf`` (mutual TLS,
``require_certificate``, ``use_identity_as_username``, ``use_username_as_clientid``, CRL,
ACL file). :class:`Mosquitto` runs it on a chosen loopback port, for the live tests and the
live benchmark (the same fleet against the embedded broker and against Mosquitto).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from twin.live.identities import LiveError

SBIN = ("/usr/sbin", "/usr/local/sbin")


def find_mosquitto() -> str | None:
    """The ``mosquitto`` binary (Debian installs it in /usr/sbin, often not on PATH)."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path=os.pathsep.join(SBIN))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Mosquitto:
    """A Mosquitto process serving the fleet provisioned in ``platform`` on ``port``.

    Args:
        platform: a folder ``twin provision`` wrote.
        port: the loopback port to listen on (0: a free one).
        binary: the mosquitto executable (default: found on PATH or in /usr/sbin).

    Raises:
        LiveError: Mosquitto is not installed, the exported configuration is missing, or
            the broker did not start listening within 10 s (its log is quoted).
    """

    def __init__(self, platform: Path, port: int = 0, binary: str | None = None) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise LiveError("mosquitto is not installed (apt-get install mosquitto)")
        exported = platform / "broker" / "mosquitto.conf"
        if not exported.is_file():
            raise LiveError(f"{exported} not found: provision the fleet with twin provision")
        self.binary = found
        self.port = port or free_port()
        conf = re.sub(r"^listener \d+", f"listener {self.port}", exported.read_text(),
                      count=1, flags=re.MULTILINE)
        if os.geteuid() == 0:  # as root it drops to user "mosquitto", who cannot read the keys
            conf += "user root\n"
        self.conf = platform / "broker" / f"mosquitto-{self.port}.conf"
        self.conf.write_text(conf)
        self.log = self.conf.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``mqtts://127.0.0.1:PORT``."""
        return f"mqtts://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        """Start and wait until the port accepts connections."""
        with self.log.open("wb") as log:  # a file, not a pipe: a full pipe would block it
            self.process = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                            stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise LiveError(f"mosquitto did not start: {self.log.read_text()[-1000:]}")

    def stop(self) -> None:
        """Terminate the process (and wait for it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
