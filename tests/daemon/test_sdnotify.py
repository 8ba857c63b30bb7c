"""sd_notify without libsystemd: real datagrams on a real socket, as systemd would receive them."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from trt_mass.daemon.sdnotify import Notifier


@pytest.fixture()
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    yield server, str(path)
    server.close()


def _receive(server: socket.socket) -> str:
    return server.recv(4096).decode()


def test_states_reach_the_socket(listener: tuple[socket.socket, str]) -> None:
    server, address = listener
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    notifier.ready("watching incoming")
    assert _receive(server) == "READY=1\nSTATUS=watching incoming"
    notifier.status("model_unavailable: no file")
    assert _receive(server) == "STATUS=model_unavailable: no file"
    notifier.watchdog()
    assert _receive(server) == "WATCHDOG=1"
    notifier.stopping()
    assert _receive(server) == "STOPPING=1"
    notifier.close()


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="abstract socket names are Linux only")
def test_abstract_namespace_address() -> None:
    name = f"trtmass-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(5)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready("up")
        assert _receive(server) == "READY=1\nSTATUS=up"
    finally:
        server.close()


def test_watchdog_interval_is_half_the_period_and_only_for_this_process() -> None:
    assert Notifier({"WATCHDOG_USEC": "20000000"}).watchdog_interval_s == 10.0
    assert Notifier({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_interval_s == 10.0
    assert Notifier({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}).watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_interval_s is None
    assert Notifier({}).watchdog_interval_s is None


def test_without_systemd_or_with_systemd_gone_nothing_breaks(tmp_path: Path) -> None:
    quiet = Notifier({})
    assert not quiet.enabled
    quiet.ready("nobody listens")  # no socket: a no-op
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "no-such-socket")})
    gone.ready("systemd went away")  # the send fails inside; processing must go on
    gone.close()


def test_a_full_queue_drops_the_message_instead_of_blocking(listener: tuple[socket.socket, str]) -> None:
    """A listener that does not read (its queue holds 10 datagrams by default) stalled the whole daemon:
    the outbox thread and the main thread both waited in sendto."""
    import threading

    server, address = listener
    notifier = Notifier({"NOTIFY_SOCKET": address})
    sender = threading.Thread(target=lambda: [notifier.status(f"line {i}") for i in range(500)], daemon=True)
    sender.start()
    sender.join(timeout=10)
    assert not sender.is_alive(), "sendto blocked on a full queue"
    assert _receive(server) == "STATUS=line 0"
