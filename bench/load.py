"""A bounded load generator on loopback: N clients, each on its own keep-alive connection, for a fixed time,
each fetching one URL again and again (signers are played by wrk: see bench/signing.py). Every request is
timed. Load only ever goes to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    seconds: float = 0.0
    completed: int = 0  # responses that succeeded
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # every request, in seconds
    first_errors: list[str] = field(default_factory=list)  # what went wrong, the first few times

    def summary(self) -> dict:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2) if ordered else 0.0

        return {"seconds": round(self.seconds, 2), "completed": self.completed, "errors": self.errors,
                "first_errors": self.first_errors,
                "per_second": round(self.completed / self.seconds, 1) if self.seconds else 0.0,
                "requests": len(ordered), "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def _failed(result: Result, lock: threading.Lock, error: Exception) -> None:
    with lock:
        result.errors += 1
        if len(result.first_errors) < 3:
            result.first_errors.append(f"{type(error).__name__}: {error}")


def _get_loop(port: int, path: str, stop: float, result: Result, lock: threading.Lock) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while time.monotonic() < stop:
        try:
            started = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(str(response.status))
            with lock:
                result.latencies.append(elapsed)
                result.completed += 1
        except Exception as error:
            _failed(result, lock, error)
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.close()


def merged(results: list[Result]) -> Result:
    """Several runs against one server as one."""
    total = Result()
    for result in results:
        total.seconds += result.seconds
        total.completed += result.completed
        total.errors += result.errors
        total.latencies += result.latencies
        total.first_errors += result.first_errors[:3 - len(total.first_errors)]
    return total


def run(mode: str, port: int, path: str, clients: int = 16, seconds: float = 15.0) -> Result:
    if mode != "get":
        raise ValueError(f"unknown mode {mode!r}: signers are bench/signing.py's")
    result, lock = Result(), threading.Lock()
    stop = time.monotonic() + seconds
    threads = [threading.Thread(target=_get_loop, args=(port, path, stop, result, lock)) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - started
    return result
