"""TCP ports on the loopback interface for every listener the stack starts, stable across runs."""

from __future__ import annotations

import contextlib
import socket

LOOPBACK = "127.0.0.1"


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct ports that were free a moment ago.

    All sockets stay bound until every port is chosen, so the same port is never handed out
    twice; another program could still take one before our child binds it, which the child then
    reports as an address in use."""
    if count < 0:
        raise ValueError("count must not be negative")
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


class PortTaken(Exception):
    """A port the stack must use (the gateway's) is held by another program."""


def is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortPlan:
    """Ports by name ("gateway-1/https"), stable across runs: a fixed port when one is asked
    for, else the port remembered from the last run while it is still free, else a free one.

    Every port handed out is distinct; another program could still take a free one before our
    child binds it, which the child then reports as an address in use."""

    def __init__(
        self,
        remembered: dict[str, int] | None = None,
        fixed: dict[str, int] | None = None,
        host: str = LOOPBACK,
    ) -> None:
        self._remembered = dict(remembered or {})
        self._fixed = dict(fixed or {})
        self._host = host
        self.assigned: dict[str, int] = {}

    def take(self, name: str) -> int:
        if name in self.assigned:
            return self.assigned[name]
        used = set(self.assigned.values()) | set(self._fixed.values())
        port = self._fixed.get(name)
        if port is not None:
            if not is_free(port, self._host):
                raise PortTaken(f"port {port} ({name}) is in use by another program")
        else:
            port = self._remembered.get(name)
            if port is None or port in used or not is_free(port, self._host):
                port = self._fresh(used)
        self.assigned[name] = port
        return port

    def _fresh(self, used: set[int]) -> int:
        while True:
            (port,) = free_ports(1, self._host)
            if port not in used:
                return port
