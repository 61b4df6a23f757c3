"""Retry pacing for the Gateway UE's upstream session, and its state as devices see it.

While the upstream session cannot start (server down, the gateway's UE service
ID not associated, a wrong ue_service_id), every attempt runs 5G AKA and AKMA
again. `Backoff` spaces the attempts out: 1 s, doubling up to 60 s, and back to
the poll interval after a success. `UpstreamStatus` counts the failed attempts,
so that the log and the 5.03 responses to devices can state how long it has lasted.
"""

import dataclasses
import time

INITIAL_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 60.0
# A repeated upstream failure with the same cause is logged again every this many attempts.
LOG_EVERY_ATTEMPTS = 10


@dataclasses.dataclass
class Backoff:
    """Exponential backoff: each delay doubles the last, up to `maximum`; `reset` starts over."""

    initial: float = INITIAL_DELAY_SECONDS
    maximum: float = MAX_DELAY_SECONDS
    _next: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(
                f"invalid backoff {self.initial} to {self.maximum} s: use 0 < initial <= maximum"
            )

    def next_delay(self) -> float:
        """Return the delay before the next attempt and double the one after it."""
        delay = self.initial if self._next is None else self._next
        self._next = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = None


@dataclasses.dataclass
class UpstreamStatus:
    """The failed upstream attempts since the last success, shared by the poller and the service."""

    failures: int = 0
    last_cause: str | None = None
    retry_at: float | None = None

    def record_failure(self, cause: str, delay: float) -> bool:
        """Count one failed attempt; return whether it deserves a log line.

        The first failure, a change of cause, and every LOG_EVERY_ATTEMPTS-th
        repeat are logged, so a permanent failure does not flood the log.
        """
        changed = cause != self.last_cause
        self.failures += 1
        self.last_cause = cause
        self.retry_at = time.monotonic() + delay
        return changed or self.failures % LOG_EVERY_ATTEMPTS == 0

    def record_success(self) -> int:
        """Clear the failures; return how many there were."""
        failures = self.failures
        self.failures = 0
        self.last_cause = None
        self.retry_at = None
        return failures

    def describe(self) -> str:
        """Describe the retries in a few words, for the detail of a 5.03 response."""
        if self.failures == 0:
            return "no failed attempt so far"
        text = f"{counted(self.failures, 'failed attempt')} to start it, the last with {self.last_cause}"
        if self.retry_at is not None:
            seconds = max(0.0, self.retry_at - time.monotonic())
            text += f"; the next attempt is in about {seconds:.0f} s"
        return text


def counted(count: int, noun: str) -> str:
    """Return `count` and `noun` with an English plural s unless the count is 1."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
