"""`campuscard serve` with two workers keeps kept-alive connections even between them: clients
that all landed on one worker (the other was stopped while they connected) spread over both
once it runs again, and no request goes unanswered on the way (edge/balance.py)."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil

from campuscard.db.embedded import free_port
from tests.e2e.test_serve_production import CLI, production_env

CLIENTS = 12


class Client:
    """One kept-alive HTTP/1.1 connection, opened again when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = self._open()
        self.reconnects = 0

    def _open(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def get(self, path: str) -> tuple[int, bool]:
        """The answer's status, and whether the server closed the connection after it."""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head, body = self._read_head()
        length = int(head.get("content-length", "0"))
        while len(body) < length:
            body += self._recv()
        closed = head.get("connection", "").lower() == "close"
        if closed:
            self.sock.close()
            self.sock = self._open()
            self.reconnects += 1
        return int(head[":status"]), closed

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        assert data, "the server closed a connection without answering"
        return data

    def _read_head(self) -> tuple[dict[str, str], bytes]:
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self._recv()
        raw, rest = buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        head = {":status": lines[0].split()[1]}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            head[name.strip().lower()] = value.strip()
        return head, rest

    def close(self) -> None:
        self.sock.close()


def held(pid: int, port: int) -> int:
    """Connections to ``port`` that the worker ``pid`` holds open."""
    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
    )


def settled(first: int, second: int, port: int) -> tuple[int, int]:
    """Each worker's connections once every client's is held by one (a client that has just
    reconnected may wait a moment in the listening socket's queue, held by none)."""
    deadline = time.monotonic() + 10
    while True:
        a, b = held(first, port), held(second, port)
        if a + b == CLIENTS or time.monotonic() > deadline:
            return a, b
        time.sleep(0.02)


def test_connections_that_landed_on_one_worker_spread_over_both(
    db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = production_env(db_url, port, CAMPUSCARD_WORKERS="2", CAMPUSCARD_DATA_DIR=str(tmp_path))
    proc = subprocess.Popen(
        [*CLI, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    clients: list[Client] = []
    stopped: int | None = None
    try:
        # given a server whose two workers both answer, each counted in the balance directory
        counts = tmp_path / "connections"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers = sorted(int(p.name) for p in counts.glob("*")) if counts.is_dir() else []
            try:
                if (
                    len(workers) == 2
                    and httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).is_success
                ):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError("serve did not start two workers")
        first, second = workers
        # when every client connects while the second worker is stopped
        os.kill(second, signal.SIGSTOP)
        stopped = second
        clients = [Client(port) for _ in range(CLIENTS)]
        for client in clients:
            assert client.get("/api/health")[0] == 200
        assert settled(first, second, port) == (CLIENTS, 0)
        os.kill(second, signal.SIGCONT)
        stopped = None
        # then, as the clients go on, the first worker closes some connections after their
        # answer and they come back on the second, until both hold about half
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for client in clients:
                assert client.get("/api/health")[0] == 200
            a, b = settled(first, second, port)
            if a + b == CLIENTS and abs(a - b) <= 2:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"the connections stayed uneven: {a} and {b}")
        # and the balance holds without churning: a worker sheds at most what it holds over
        # its share once a second (one connection while the counts are one apart)
        before = sum(c.reconnects for c in clients)
        started = time.monotonic()
        for _ in range(5):
            for client in clients:
                assert client.get("/api/health")[0] == 200
            time.sleep(0.4)
        seconds = time.monotonic() - started
        assert sum(c.reconnects for c in clients) - before <= 2 * math.ceil(seconds) + 2
        a, b = settled(first, second, port)
        assert a + b == CLIENTS and abs(a - b) <= 2, (a, b)
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
