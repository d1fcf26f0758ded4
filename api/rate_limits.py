"""Per-API-key rate limits: how many requests one key may make per minute.

Both limiters count with GCRA (the generic cell rate algorithm), a leaky bucket kept as
one number per key: the "theoretical arrival time" at which the key's bucket is empty
again. Each allowed request pushes it `60 / limit` seconds later; a request that would push
it more than a minute past now is refused, and the excess is exactly how long the caller
must wait. So a key may burst `limit` requests and then make one every `60 / limit`
seconds: over any long stretch it gets `limit` a minute, though one 60-second stretch that
starts with a full bucket can see up to `2 * limit - 1` (the burst, then the refill).
A fixed one-minute window (INCR + EXPIRE) has the same 2x worst case, at a window boundary,
but tells a refused caller to wait for the rest of the window (up to 60 s, with every
refused client coming back at once); GCRA's wait is at most `60 / limit` seconds. A sliding
log would be strict but keeps `limit` timestamps per key; GCRA keeps one number.

Worked example, 3 requests a minute (one every 20 s):

>>> now = [0.0]
>>> limiter = MemoryRateLimiter(3, clock=lambda: now[0])
>>> [limiter.hit("key") for _ in range(4)]
[None, None, None, 20.0]
>>> now[0] = 20.0
>>> limiter.hit("key"), limiter.hit("key")
(None, 20.0)
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import redis

from store.settings import Settings

log = logging.getLogger(__name__)

PERIOD_S = 60.0  # the limit is per minute
REDIS_TIMEOUT_S = 0.5  # a slow limiter must not hold requests up for long
OUTAGE_WARNING_INTERVAL_S = 60.0
# After Redis fails, requests skip it for this long: a Redis that times out rather than
# refusing would otherwise add REDIS_TIMEOUT_S to every request during the outage.
OUTAGE_BACKOFF_S = 5.0


class RateLimiter(Protocol):
    def hit(self, key: str) -> float | None:
        """Count one request by `key`: None if it is allowed, else the seconds (> 0) until
        a request by that key would be allowed again."""
        ...


def _emission_interval(limit_per_minute: int) -> float:
    if limit_per_minute < 1:
        raise ValueError(f"a rate limit needs at least 1 request a minute, not {limit_per_minute}")
    return PERIOD_S / limit_per_minute


class MemoryRateLimiter:
    """Counts in this process's memory: for one API process (the embedded default).

    Thread-safe. Keys idle for a minute are forgotten, in a sweep at most once a minute,
    so memory holds only the keys active in the last two minutes.
    """

    def __init__(self, limit_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = _emission_interval(limit_per_minute)
        self._clock = clock
        self._lock = threading.Lock()
        self._arrival_times: dict[str, float] = {}
        self._next_sweep = clock() + PERIOD_S

    def hit(self, key: str) -> float | None:
        with self._lock:
            now = self._clock()
            if now >= self._next_sweep:
                self._forget_idle_keys(now)
            arrival = max(self._arrival_times.get(key, now), now) + self._interval
            wait = arrival - now - PERIOD_S
            if wait > 0:
                return wait
            self._arrival_times[key] = arrival
            return None

    def __len__(self) -> int:
        """How many keys the limiter holds a count for."""
        with self._lock:
            return len(self._arrival_times)

    def _forget_idle_keys(self, now: float) -> None:
        """Drop the keys whose bucket has drained: a fresh key behaves the same."""
        self._arrival_times = {
            key: arrival for key, arrival in self._arrival_times.items() if arrival > now
        }
        self._next_sweep = now + PERIOD_S


# KEYS[1]: the key's TAT; ARGV: now, the emission interval, the period (seconds).
# Returns nil when allowed, else the wait as a string (Lua numbers reply as integers).
# The TAT expires when the bucket has drained, so idle keys leave Redis by themselves.
_GCRA_SCRIPT = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local stored = redis.call('GET', KEYS[1])
local arrival = now
if stored then arrival = math.max(tonumber(stored), now) end
arrival = arrival + interval
local wait = arrival - now - period
if wait > 0 then return string.format('%.6f', wait) end
local ttl_ms = math.ceil((arrival - now) * 1000)
redis.call('SET', KEYS[1], string.format('%.6f', arrival), 'PX', ttl_ms)
return false
"""


class RedisRateLimiter:
    """Counts in Redis, shared by every API process that points at the same server.

    The GCRA step runs as one Lua script, so concurrent requests from several processes
    are counted atomically. The time comes from `clock` in the API process (so processes
    on machines whose clocks disagree by s seconds may let s / (60 / limit) extra requests
    through). If Redis cannot be reached, requests are allowed (fail open, with a warning
    at most once a minute): an outage of the limiter must not take the API down.
    """

    def __init__(
        self,
        redis_url: str,
        limit_per_minute: int,
        clock: Callable[[], float] = time.time,
        namespace: str = "memlab:rate",
    ) -> None:
        self._interval = _emission_interval(limit_per_minute)
        self._clock = clock
        self._namespace = namespace
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        self._gcra = self._redis.register_script(_GCRA_SCRIPT)
        self._outage_lock = threading.Lock()
        self._skip_redis_until = -math.inf
        self._last_outage_warning = -math.inf

    def hit(self, key: str) -> float | None:
        now = self._clock()
        if now < self._skip_redis_until:
            return None
        try:
            wait = self._gcra(
                keys=[f"{self._namespace}:{key}"], args=[repr(now), self._interval, PERIOD_S]
            )
        except redis.RedisError as error:
            self._note_outage(now, error)
            return None
        return None if wait is None else float(wait)

    def _note_outage(self, now: float, error: redis.RedisError) -> None:
        with self._outage_lock:
            self._skip_redis_until = now + OUTAGE_BACKOFF_S
            if now - self._last_outage_warning < OUTAGE_WARNING_INTERVAL_S:
                return
            self._last_outage_warning = now
        log.warning(
            "rate limits are not enforced: the Redis that counts requests failed (%s); "
            "allowing every request until it answers",
            error,
        )


def rate_limiter_for(settings: Settings) -> RateLimiter | None:
    """The limiter the settings ask for: None without a limit, Redis when the backend is
    redis (or auto in production), memory otherwise."""
    limit = settings.rate_limit_per_minute
    if limit == 0:
        return None
    uses_redis = settings.rate_limit_backend == "redis" or (
        settings.rate_limit_backend == "auto" and settings.environment == "production"
    )
    if not uses_redis:
        return MemoryRateLimiter(limit)
    url = settings.rate_limit_redis_url or settings.broker_url
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss"):
        if settings.rate_limit_redis_url:
            source = "MEMLAB_RATE_LIMIT_REDIS_URL"
        else:
            source = "MEMLAB_BROKER_URL"
        # Only the scheme is quoted: the URL may carry a password.
        raise ValueError(
            f"rate limits are counted in Redis (MEMLAB_RATE_LIMIT_BACKEND="
            f"{settings.rate_limit_backend}, MEMLAB_ENVIRONMENT={settings.environment}), "
            f"but {source} is not a redis:// or rediss:// URL (its scheme is "
            f"{scheme or 'missing'!r}); set MEMLAB_RATE_LIMIT_REDIS_URL to a Redis, or "
            "MEMLAB_RATE_LIMIT_BACKEND=memory for a single API process"
        )
    return RedisRateLimiter(url, limit)
