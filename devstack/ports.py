"""Free TCP ports on the loopback interface, for every listener the stack starts."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

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


class PortPool:
    """Hands out ports allocated together, one at a time."""

    def __init__(self, count: int, host: str = LOOPBACK) -> None:
        self._ports: Iterator[int] = iter(free_ports(count, host))

    def take(self) -> int:
        try:
            return next(self._ports)
        except StopIteration:
            raise RuntimeError("more ports taken than were allocated") from None
