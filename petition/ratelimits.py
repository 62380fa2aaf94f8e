"""Rate limits, counted in the configured store, or in this process's memory while that store is away.

The views that have limits (signing, login) check them here, through ``limits`` directly. When the shared
store (Redis) cannot be reached, signing and login go on: this process counts in its own memory, logs one
warning, and tries the store again every ``RETRY_SECONDS``; the first answer from it ends the degraded mode.
Meanwhile each process enforces the limits on its own, so with N processes a sender may get up to N times
the limit: a looser limit for a while rather than an outage.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache

from flask import Flask, current_app
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)

EXTENSION = "petition.limits"
RETRY_SECONDS = 5.0
# A store that does not answer within this costs a signer no more than that once per RETRY_SECONDS.
STORE_TIMEOUT_SECONDS = 0.5


class ThreadSafeMemoryStorage(Storage):
    """Fixed-window counters in this process's memory: limits' ``memory://`` scheme, swept by the caller.

    limits' own MemoryStorage starts a timer thread 10 ms after almost every hit to sweep expired keys: a new
    thread for most signatures under load, and two threads could start one timer at once ("threads can only
    be started once", a 500 for a signer; limits 5.8.0). These counters are kept under one lock and swept at
    most once a ``SWEEP_SECONDS`` in the caller; a counter past its expiry reads as zero whether swept or
    not, so the sweep only frees memory. Built on limits' public ``Storage`` base, registered for the
    ``memory`` scheme: the fixed-window strategy needs ``incr``, ``get``, ``get_expiry`` and ``clear``."""

    STORAGE_SCHEME = ["memory"]
    SWEEP_SECONDS = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.storage: dict[str, int] = {}
        self.expirations: dict[str, float] = {}  # key: time.time() at which its window ends
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def _current(self, key: str, now: float) -> int:
        """The key's count, forgotten once its window is over (under the lock)."""
        if self.expirations.get(key, 0.0) <= now:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            return 0
        return self.storage.get(key, 0)

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._next_sweep = now + self.SWEEP_SECONDS
                for expired in [name for name, ends in self.expirations.items() if ends <= now]:
                    self._current(expired, now)
            count = self._current(key, now) + amount
            if count == amount:
                self.expirations[key] = now + expiry
            self.storage[key] = count
            return count

    def get(self, key: str) -> int:
        with self._lock:
            return self._current(key, time.time())

    def get_expiry(self, key: str) -> float:
        return self.expirations.get(key, time.time())

    def clear(self, key: str) -> None:
        with self._lock:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            cleared = len(self.storage)
            self.storage.clear()
            self.expirations.clear()
            return cleared


class Limits:
    """Fixed-window counters in ``uri``'s store, falling back to memory while that store fails."""

    def __init__(self, uri: str, retry_seconds: float = RETRY_SECONDS) -> None:
        self.uri = uri
        self.retry_seconds = retry_seconds
        self.memory = ThreadSafeMemoryStorage()
        if uri.startswith("memory://"):
            self.store: Storage = self.memory
        else:  # errors of any backend arrive as limits' StorageError
            timeouts = ({"socket_timeout": STORE_TIMEOUT_SECONDS, "socket_connect_timeout": STORE_TIMEOUT_SECONDS}
                        if uri.startswith("redis") else {})
            self.store = storage_from_string(uri, wrap_exceptions=True, **timeouts)
        self._shared = FixedWindowRateLimiter(self.store)
        self._local = FixedWindowRateLimiter(self.memory)
        self._lock = threading.Lock()
        self._down_until = 0.0  # monotonic time before which the store is not tried again
        self.degraded = False

    def _call(self, method: str, *args):
        if self.store is self.memory or time.monotonic() < self._down_until:
            return getattr(self._local, method)(*args)
        try:
            answer = getattr(self._shared, method)(*args)
        except StorageError as error:
            with self._lock:
                self._down_until = time.monotonic() + self.retry_seconds
                if not self.degraded:
                    self.degraded = True
                    log.warning("rate-limit store unreachable (%s): counting in this process's memory, "
                                "trying it again every %g s", type(error.storage_error).__name__,
                                self.retry_seconds)
            return getattr(self._local, method)(*args)
        if self.degraded:
            with self._lock:
                if self.degraded:
                    self.degraded = False
                    log.warning("rate-limit store reachable again: limits are shared once more")
        return answer

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count one against ``item``; False if that passed the limit."""
        return self._call("hit", item, *identifiers)

    def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Whether one more would still be within the limit, without counting it."""
        return self._call("test", item, *identifiers)

    def retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        """Whole seconds until ``item``'s window for ``identifiers`` opens again (at least 1)."""
        reset = self._call("get_window_stats", item, *identifiers).reset_time
        return max(1, int(reset - time.time()) + 1)

    def hit_all(self, items: tuple[RateLimitItem, ...], *identifiers: str) -> list[RateLimitItem]:
        """Count one against every item, always all of them; return those that were passed."""
        return [item for item in items if not self.hit(item, *identifiers)]

    def wait(self, items: list[RateLimitItem], *identifiers: str) -> int:
        """Whole seconds until every window of ``items`` for ``identifiers`` has room again."""
        return max(self.retry_after(item, *identifiers) for item in items)


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = Limits(app.config["RATELIMIT_STORAGE_URI"],
                                       app.config.get("RATELIMIT_RETRY_SECONDS", RETRY_SECONDS))


def current() -> Limits:
    return current_app.extensions[EXTENSION]


@lru_cache(maxsize=16)
def parsed(text: str) -> tuple[RateLimitItem, ...]:
    """``"10 per minute;50 per hour"`` as limit items, parsed once."""
    return tuple(parse_many(text))
