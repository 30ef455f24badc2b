"""A monitored server's status, decided in one place from when it last delivered metrics.

The model is the real Server Scout's: *initialising* (added, never checked in), *online*,
*warning* and *offline*, with thresholds counted in the agent's reporting intervals (the real
product's agent reports every 5 s: online within 15 s, offline after 60 s, i.e. 3 and 12
intervals), and *paused* while a person has paused the server's monitoring (maintenance: no
warning, no offline; its agent may still post). *unknown* is answered when the last-seen facts
could not be read (the ingest service is down): a status we cannot back is never guessed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class ServerStatus(enum.StrEnum):
    INITIALISING = "initialising"
    ONLINE = "online"
    WARNING = "warning"
    OFFLINE = "offline"
    PAUSED = "paused"
    UNKNOWN = "unknown"


DEFAULT_AGENT_INTERVAL_SECONDS = 10.0  # the agent's own default (SCOUTINTERVAL)
DEFAULT_WARNING_INTERVALS = 3
DEFAULT_OFFLINE_INTERVALS = 12


@dataclass(frozen=True)
class StatusRule:
    """Online while the last delivery is at most `warning_intervals` reporting intervals old,
    warning until `offline_intervals`, offline after."""

    agent_interval_seconds: float = DEFAULT_AGENT_INTERVAL_SECONDS
    warning_intervals: int = DEFAULT_WARNING_INTERVALS
    offline_intervals: int = DEFAULT_OFFLINE_INTERVALS

    def __post_init__(self) -> None:
        if not 0 < self.warning_intervals < self.offline_intervals:
            raise ValueError("offline_intervals must be more than warning_intervals (both > 0)")

    @property
    def warning_after_seconds(self) -> float:
        return self.agent_interval_seconds * self.warning_intervals

    @property
    def offline_after_seconds(self) -> float:
        return self.agent_interval_seconds * self.offline_intervals

    def status(
        self, last_seen_at: datetime | None, now: datetime, *, known: bool, paused: bool = False
    ) -> ServerStatus:
        """`known` is False when the last-seen facts were unavailable."""
        if paused:
            return ServerStatus.PAUSED
        if not known:
            return ServerStatus.UNKNOWN
        if last_seen_at is None:
            return ServerStatus.INITIALISING
        silent = (now - last_seen_at).total_seconds()
        if silent <= self.warning_after_seconds:
            return ServerStatus.ONLINE
        if silent <= self.offline_after_seconds:
            return ServerStatus.WARNING
        return ServerStatus.OFFLINE
