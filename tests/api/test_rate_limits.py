"""Per-key rate limits: the memory and Redis limiters behave alike, on a fake clock."""

from __future__ import annotations

import doctest
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

import api.rate_limits
from api.rate_limits import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    rate_limiter_for,
)
from store.settings import Settings

REDIS_TEST_DB = 12
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeLimiter = Callable[[int, FakeClock], RateLimiter]


@pytest.fixture
def redis_test_url(redis_server_url: str) -> str:
    return f"{redis_server_url}/{REDIS_TEST_DB}"


@pytest.fixture
def namespace(redis_test_url: str) -> Iterator[str]:
    """A Redis key prefix of this test's own, whose keys are deleted afterwards."""
    prefix = f"memlab-test:rate:{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(redis_test_url)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def make_redis_limiter(
    redis_test_url: str, namespace: str
) -> Callable[[int, FakeClock], RedisRateLimiter]:
    """Redis limiters that share one count, as the API processes of one server do."""

    def make(limit: int, clock: FakeClock) -> RedisRateLimiter:
        return RedisRateLimiter(redis_test_url, limit, clock=clock, namespace=namespace)

    return make


@pytest.fixture(params=["memory", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> MakeLimiter:
    """Either limiter; Redis's clock starts at a real epoch time, to exercise its precision."""
    if request.param == "memory":
        return lambda limit, clock: MemoryRateLimiter(limit, clock=clock)
    make_redis: Callable[[int, FakeClock], RedisRateLimiter] = request.getfixturevalue(
        "make_redis_limiter"
    )
    return make_redis


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


def hits(limiter: RateLimiter, key: str, count: int) -> list[float | None]:
    return [limiter.hit(key) for _ in range(count)]


# Behaviour shared by both limiters


def test_a_key_gets_its_limit_then_waits_one_interval(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(3, clock)  # one request every 20 s, bursts of 3
    assert hits(limiter, "a", 3) == [None, None, None]
    wait = limiter.hit("a")
    assert wait is not None
    assert 0 < wait <= 60
    assert wait == pytest.approx(20.0)


def test_another_key_is_unaffected(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(2, clock)
    hits(limiter, "a", 2)
    assert limiter.hit("a") is not None
    assert hits(limiter, "b", 2) == [None, None]


def test_allowed_again_after_the_wait_and_refused_requests_do_not_count(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(3, clock)
    hits(limiter, "a", 3)
    waits = hits(limiter, "a", 5)  # hammering while refused must not lengthen the wait
    assert all(wait == pytest.approx(20.0) for wait in waits)
    clock.advance(19.75)  # quarters add up exactly, even at an epoch time
    assert limiter.hit("a") == pytest.approx(0.25)
    clock.advance(0.25)
    assert limiter.hit("a") is None
    assert limiter.hit("a") == pytest.approx(20.0)


def test_a_full_burst_again_once_the_minute_has_passed(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(5, clock)
    hits(limiter, "a", 5)
    assert limiter.hit("a") is not None
    clock.advance(60)
    assert hits(limiter, "a", 5) == [None] * 5
    assert limiter.hit("a") is not None


def test_concurrent_hits_let_exactly_the_limit_through(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    # Two limiters over one count stand for two API processes (the memory limiter's
    # second "process" is the same object: it is for one process only).
    first = make_limiter(40, clock)
    second = first if isinstance(first, MemoryRateLimiter) else make_limiter(40, clock)
    allowed = [0] * 8
    start = threading.Barrier(8)

    def hammer(index: int) -> None:
        limiter = first if index % 2 else second
        start.wait()
        allowed[index] = sum(limiter.hit("shared") is None for _ in range(15))

    threads = [threading.Thread(target=hammer, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 40


def test_a_limit_under_one_request_a_minute_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 request a minute"):
        MemoryRateLimiter(0)


def test_the_worked_example_in_the_docstring_holds() -> None:
    assert doctest.testmod(api.rate_limits).failed == 0


# The memory limiter's bounded memory


def test_memory_forgets_keys_whose_bucket_has_drained(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(3, clock=clock)
    for index in range(1000):
        limiter.hit(f"idle-{index}")  # drained 20 s later
    clock.advance(50)
    limiter.hit("recent")  # drained at 70 s
    assert len(limiter) == 1001
    clock.advance(11)  # past the first sweep, at 60 s
    limiter.hit("new")
    assert len(limiter) == 2
    clock.advance(60)
    limiter.hit("new")
    assert len(limiter) == 1


# The Redis limiter across processes, and when Redis is away


def test_two_redis_limiters_share_one_count(
    make_redis_limiter: Callable[[int, FakeClock], RedisRateLimiter], clock: FakeClock
) -> None:
    first, second = make_redis_limiter(3, clock), make_redis_limiter(3, clock)
    assert [first.hit("a"), second.hit("a"), first.hit("a")] == [None, None, None]
    assert second.hit("a") == pytest.approx(20.0)
    assert first.hit("a") == pytest.approx(20.0)


def test_redis_keys_expire_once_their_bucket_has_drained(
    make_redis_limiter: Callable[[int, FakeClock], RedisRateLimiter],
    redis_test_url: str,
    namespace: str,
    clock: FakeClock,
) -> None:
    limiter = make_redis_limiter(3, clock)
    hits(limiter, "a", 2)  # drained 40 s from now
    client = redis.Redis.from_url(redis_test_url)
    [key] = client.scan_iter(match=f"{namespace}:*")
    assert 30_000 < client.pttl(key) <= 40_000  # less what the test has taken since
    client.close()


def test_unreachable_redis_allows_and_warns_once_a_minute(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RedisRateLimiter(UNREACHABLE_REDIS, 1, clock=clock)
    with caplog.at_level(logging.WARNING, logger="api.rate_limits"):
        assert hits(limiter, "a", 3) == [None, None, None]
        clock.advance(30)
        assert hits(limiter, "a", 3) == [None, None, None]
        assert len(caplog.records) == 1
        clock.advance(31)
        assert limiter.hit("a") is None
    assert len(caplog.records) == 2
    assert "rate limits are not enforced" in caplog.records[0].getMessage()


def test_after_a_failure_redis_is_left_alone_for_a_few_seconds(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Redis that times out would otherwise cost every request the socket timeout.
    limiter = RedisRateLimiter(UNREACHABLE_REDIS, 1, clock=clock)
    attempts = 0

    def failing_script(**_: Any) -> None:
        nonlocal attempts
        attempts += 1
        raise redis.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(limiter, "_gcra", failing_script)
    assert limiter.hit("a") is None
    clock.advance(api.rate_limits.OUTAGE_BACKOFF_S - 0.1)
    assert hits(limiter, "a", 10) == [None] * 10
    assert attempts == 1
    clock.advance(0.1)
    assert limiter.hit("a") is None
    assert attempts == 2


# Which limiter the settings ask for


PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "database_url": "postgresql+psycopg://memlab@db/memlab",
    "broker_url": "redis://:secret@broker:6379/0",
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, MemoryRateLimiter),
        ({"rate_limit_per_minute": 0}, type(None)),
        ({**PRODUCTION, "rate_limit_per_minute": 0}, type(None)),
        (PRODUCTION, RedisRateLimiter),
        ({**PRODUCTION, "rate_limit_backend": "memory"}, MemoryRateLimiter),
        ({"rate_limit_backend": "redis", "broker_url": "redis://broker/0"}, RedisRateLimiter),
        (
            {"rate_limit_backend": "redis", "rate_limit_redis_url": "rediss://counts:6380/1"},
            RedisRateLimiter,
        ),
        (
            {**PRODUCTION, "broker_url": "amqp://rabbit//", "rate_limit_redis_url": "redis://c/0"},
            RedisRateLimiter,
        ),
    ],
    ids=[
        "development",
        "no-limit",
        "no-limit-in-production",
        "production",
        "memory-in-production",
        "redis-from-broker",
        "redis-from-its-own-url",
        "own-url-over-a-non-redis-broker",
    ],
)
def test_the_settings_choose_the_limiter(fields: dict[str, Any], expected: type) -> None:
    assert type(rate_limiter_for(Settings(**fields))) is expected


def test_a_redis_limiter_without_a_redis_url_is_refused_without_quoting_it() -> None:
    settings = Settings(**{**PRODUCTION, "broker_url": "amqp://memlab:secret@rabbit//"})
    with pytest.raises(ValueError, match="MEMLAB_BROKER_URL is not a redis://") as refusal:
        rate_limiter_for(settings)
    assert "secret" not in str(refusal.value)
    with pytest.raises(ValueError, match="its scheme is 'missing'"):
        rate_limiter_for(Settings(rate_limit_backend="redis"))
    with pytest.raises(ValueError, match="MEMLAB_RATE_LIMIT_REDIS_URL is not"):
        rate_limiter_for(
            Settings(rate_limit_backend="redis", rate_limit_redis_url="memcached://cache")
        )
