"""The lease under which a gateway may answer from its caches.

Invariant: once a publisher's wait for an invalidation event E has ended (every registered
gateway acknowledged E, or `provable_expiry(L)` passed on its clock since Redis answered the
PUBLISH of E, so since after E was delivered), no gateway answers from a cache entry that E ended.

A gateway holds a lease only in the interval [s, s + L) of its own monotonic clock (CLOCK_BOOTTIME,
which keeps counting while the process is stopped or the machine suspended), where s is when it
*sent* a PING on its subscription connection and the PONG has since arrived; and never past
`registered_until` (it sent a registry refresh at time w that Redis accepted, so its entry lives at
least until w + REGISTRATION_SECONDS). Every cache read checks the lease; without one the read is a
miss and nothing is stored. Why that holds the invariant, for a gateway G and an event E that Redis
delivered to subscribers at time p:

- Redis handled G's PING after p: Redis answers in order on one connection, so the PONG came after
  E on it. G applies each message before reading the next, so it dropped E's entries before that
  lease began; and an answer fetched earlier cannot be stored later (the cache's generation).
- Redis handled G's PING before p: the PING was sent before p, so that lease ends before
  p + L on G's clock, i.e. before p + 1.05·L of real time even if G's clock runs 5% slow. The
  publisher's wait starts when the answer to its PUBLISH arrived, after p, so it ends later.
- G was not subscribed at p: its leases from the old connection end as in the case above, and a new
  subscription flushes the cache before it can lease anything.
- The publisher stops waiting for G early only on G's acknowledgement of E. If G was not in the
  registry when the publisher read it (after p), G held no lease then (its leases end before its
  entry does), and the refresh that put G back ran after that read: Redis tells G that its entry
  had lapsed, and from then on only a PING sent after that refresh was answered renews the lease
  (`registered(..., continued=False)`), i.e. a PING sent after p: the first case. Without that
  rule a PONG still queued ahead of E would renew the lease from an old PING once the new entry
  raised the ceiling, and G could answer from the cache before it read E.

So the invariant holds whatever G's state: stopped for any length (on waking its clock says the
lease is over; its next PONG queues behind E), partitioned from Redis or on a half-open connection
(no PONG, the lease runs out by itself), or behind a Redis that restarted empty or failed over
(the connection breaks, the cache is flushed, the registry is rebuilt before any new lease).
Outside it: a split brain in which G keeps a live subscription on a deposed primary that the
publisher no longer reaches.
"""

from __future__ import annotations

import math

from scout_kit.clock import Clock


class Lease:
    def __init__(self, clock: Clock, seconds: float) -> None:
        self._clock = clock
        self.seconds = seconds
        self._expires_at = -math.inf
        self._registered_until = -math.inf
        # Only a PING sent at or after this moment may renew (see `registered`).
        self._renewable_from = -math.inf
        self.renewals = 0

    def held(self) -> bool:
        return self._clock.monotonic() < self._expires_at

    def renew(self, ping_sent_at: float) -> None:
        """A PONG arrived for the PING sent at `ping_sent_at` (this clock's monotonic time), after
        every message before it was applied."""
        if ping_sent_at < self._renewable_from:
            return
        expires_at = min(ping_sent_at + self.seconds, self._registered_until)
        if expires_at > self._expires_at:
            self._expires_at = expires_at
            self.renewals += 1

    def registered(self, sent_at: float, lasts: float, *, continued: bool = True) -> None:
        """Redis accepted a registry refresh sent at `sent_at` that lives `lasts` seconds.
        `continued` is False when the entry had lapsed (or never existed) before this refresh ran:
        a publisher may have skipped this gateway meanwhile, so only a PING sent from now on
        renews the lease."""
        if not continued:
            self._renewable_from = max(self._renewable_from, self._clock.monotonic())
        self._registered_until = max(self._registered_until, sent_at + lasts)

    def revoke(self) -> None:
        """The subscription is gone or cannot be trusted: no lease until registered and renewed
        again."""
        self._expires_at = -math.inf
        self._registered_until = -math.inf
