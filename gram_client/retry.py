"""When and how long to wait before retrying a request: exponential backoff with jitter.

Receives the attempt number and what went wrong (a GramError: a status, a Retry-After, or no
response at all) and hands on a decision and a delay in seconds. Pure: no I/O, no clock, the
random source injected, so the backoff math is tested on its own. Knows nothing of httpx.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from gram_client.errors import GramConnectionError, GramError


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` counts every try (1 = never retry). The n-th retry waits a uniformly drawn
    fraction of `min(max_delay, base_delay * 2**n)` ("full jitter"); a Retry-After from the server
    is a floor (capped at `max_retry_after`), with up to `base_delay` of jitter added above it so
    that clients told the same Retry-After do not return in lockstep."""

    max_attempts: int = 4
    base_delay: float = 0.1
    max_delay: float = 5.0
    max_retry_after: float = 30.0
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))
    retry_connection_errors: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must be >= 0")

    def should_retry(self, error: GramError, attempt: int) -> bool:
        """`attempt` is 1 for the first try. Never retries 4xx other than those listed (429)."""
        if attempt >= self.max_attempts:
            return False
        if isinstance(error, GramConnectionError):
            return self.retry_connection_errors
        return error.status is not None and error.status in self.retry_statuses

    def delay(self, error: GramError, attempt: int, rng: random.Random) -> float:
        """Seconds to sleep before try `attempt + 1`."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        backoff = rng.uniform(0.0, ceiling)
        if error.retry_after is not None:
            floor = min(error.retry_after, self.max_retry_after)
            return max(floor + rng.uniform(0.0, self.base_delay), backoff)
        return backoff


NO_RETRY = RetryPolicy(max_attempts=1)
