"""Test doubles shared by the services' unit tests."""

import time


class FakeRedis:
    """INCR and EXPIRE through pipeline(transaction=True).execute(), as redis-py offers them."""

    def __init__(self, clock=time.time):
        self.clock, self.data, self.expiry, self.pipelines = clock, {}, {}, []

    def _expire_keys(self):
        for key, at in list(self.expiry.items()):
            if self.clock() >= at:
                self.data.pop(key, None)
                self.expiry.pop(key)

    def ping(self):
        return True

    def pipeline(self, transaction=True):
        self.pipelines.append(transaction)
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis):
        self.redis, self.ops = redis, []

    def incr(self, key):
        self.ops.append(("incr", key))
        return self

    def expire(self, key, seconds):
        self.ops.append(("expire", key, seconds))
        return self

    def execute(self):
        self.redis._expire_keys()
        results = []
        for op in self.ops:
            if op[0] == "incr":
                self.redis.data[op[1]] = self.redis.data.get(op[1], 0) + 1
                results.append(self.redis.data[op[1]])
            else:
                self.redis.expiry[op[1]] = self.redis.clock() + op[2]
                results.append(True)
        return results


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now
