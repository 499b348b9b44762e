"""The gateway's rate limiters: per client in Redis, and a local fallback while Redis is away."""

import threading
import time


class RateLimiter:
    """Fixed-window counter per client in Redis: INCR and EXPIRE in one MULTI per request.

    check() returns (allowed, remaining, retry_after_seconds).
    """

    def __init__(self, redis, limit, window, prefix="shopstream:ratelimit", clock=time.time):
        self.redis, self.limit, self.window, self.prefix, self.clock = redis, limit, window, prefix, clock

    def check(self, client, bucket="api"):
        now = self.clock()
        window_start = int(now // self.window) * self.window
        key = f"{self.prefix}:{bucket}:{client}:{window_start}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, self.window + 1)
        count = int(pipe.execute()[0])
        retry_after = max(1, int(window_start + self.window - now + 0.999))
        return count <= self.limit, max(0, self.limit - count), retry_after


class LocalRateLimiter:
    """The same fixed windows counted in this process alone, while Redis cannot count: each replica
    then allows the limit on its own (the limit times the replicas, still a limit)."""

    def __init__(self, limit, window, clock=time.time):
        self.limit, self.window, self.clock = limit, window, clock
        self.lock = threading.Lock()
        self.counts, self.window_start = {}, None

    def check(self, client, bucket="api"):
        now = self.clock()
        window_start = int(now // self.window) * self.window
        with self.lock:
            if window_start != self.window_start:
                self.counts, self.window_start = {}, window_start
            count = self.counts[(bucket, client)] = self.counts.get((bucket, client), 0) + 1
        retry_after = max(1, int(window_start + self.window - now + 0.999))
        return count <= self.limit, max(0, self.limit - count), retry_after
