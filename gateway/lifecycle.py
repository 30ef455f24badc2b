"""A gateway replica's life after SIGTERM: not ready at once, draining, then stopping.

Load balancers (and Kubernetes' endpoints, after the preStop hook) take a moment to stop sending
new connections once readiness fails. For SHUTDOWN_DRAIN_SECONDS the replica keeps serving while
/readyz answers 503; then its listeners close and in-flight requests get SHUTDOWN_GRACE_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("gateway")


class Lifecycle:
    def __init__(self) -> None:
        self.draining = False

    async def drain(self, seconds: float) -> None:
        """Fail readiness, then keep serving for `seconds` so no new connection is refused."""
        self.draining = True
        if seconds > 0:
            log.info("gateway draining: readiness fails, serving for %.1fs more", seconds)
            await asyncio.sleep(seconds)
