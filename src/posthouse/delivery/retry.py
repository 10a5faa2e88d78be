"""When to try a deferred delivery again."""

import random
from datetime import datetime, timedelta


def next_attempt_at(
    *,
    attempts: int,
    now: datetime,
    expires_at: datetime,
    base_seconds: float,
    max_seconds: float,
) -> datetime | None:
    """Exponential backoff with jitter, capped; a last try at the end of the queue
    lifetime; None once the lifetime is over (the delivery then bounces)."""
    if now >= expires_at:
        return None
    delay = min(base_seconds * 2 ** max(0, attempts - 1), max_seconds)
    # +-25% jitter spreads retries of a burst that failed together.
    delay *= 0.75 + random.random() * 0.5
    return min(now + timedelta(seconds=delay), expires_at)
