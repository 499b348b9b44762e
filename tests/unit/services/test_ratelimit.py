"""The gateway's fixed-window rate limiter, against an in-memory Redis with the same calls."""

import pytest
from services_fakes import Clock, FakeRedis
from shopstream import ratelimit


@pytest.fixture
def clock():
    return Clock(1_000_040.0)  # 20 s into a 60 s window (1_000_020 is a multiple of 60)


@pytest.fixture
def redis(clock):
    return FakeRedis(clock)


def test_allows_up_to_the_limit_then_refuses(redis, clock):
    limiter = ratelimit.RateLimiter(redis, limit=3, window=60, clock=clock)
    results = [limiter.check("ip:10.0.0.1") for _attempt in range(5)]
    assert [allowed for allowed, _remaining, _retry_after in results] == [True, True, True, False, False]
    assert [remaining for _allowed, remaining, _retry_after in results] == [2, 1, 0, 0, 0]
    assert results[3][2] == 40  # seconds until the window ends
    assert all(redis.pipelines), "INCR and EXPIRE must run in one MULTI"


def test_clients_and_buckets_are_counted_apart(redis, clock):
    limiter = ratelimit.RateLimiter(redis, limit=1, window=60, clock=clock)
    assert limiter.check("ip:10.0.0.1")[0]
    assert not limiter.check("ip:10.0.0.1")[0]
    assert limiter.check("ip:10.0.0.2")[0]
    assert limiter.check("user:demo")[0]
    assert limiter.check("ip:10.0.0.1", bucket="login")[0]


def test_next_window_starts_afresh(redis, clock):
    limiter = ratelimit.RateLimiter(redis, limit=2, window=60, clock=clock)
    for _attempt in range(3):
        limiter.check("ip:1")
    assert not limiter.check("ip:1")[0]
    clock.now += 40  # the next window
    assert limiter.check("ip:1") == (True, 1, 60)


def test_keys_expire_so_redis_does_not_grow(redis, clock):
    limiter = ratelimit.RateLimiter(redis, limit=5, window=60, clock=clock)
    limiter.check("ip:1")
    (key,) = redis.data
    assert key.startswith("shopstream:ratelimit:api:ip:1:")
    assert redis.expiry[key] - clock.now == 61
    clock.now += 120
    redis._expire_keys()
    assert not redis.data


def test_redis_errors_reach_the_caller(clock):
    class Down:
        def pipeline(self, transaction=True):
            raise ConnectionError("redis is down")

    with pytest.raises(ConnectionError):
        ratelimit.RateLimiter(Down(), limit=1, window=60, clock=clock).check("ip:1")
