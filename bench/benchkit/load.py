"""Load generation: oha for fixed requests, a thread driver for one-use bodies.

oha sends one request body repeatedly (`-d`) or picks random lines of a file
(`-Z`), so it cannot post each authorization code exactly once. The code
exchange therefore uses `drive_once`, a thread pool over `http.client`.
"""

import base64
import http.client
import json
import subprocess
import threading
import time
from dataclasses import asdict, dataclass


@dataclass
class Figure:
    """One measured run: the successes per second and latency in milliseconds."""

    scenario: str
    target: str
    concurrency: int
    seconds: float
    ok: int
    failed: int
    per_second: float
    p50_ms: float
    p99_ms: float
    statuses: dict
    rss_kib: int = 0
    # CPU seconds the server used during the measured run, all threads.
    server_cpu_s: float = 0.0
    scale: int = 0
    # Monotonic start and end of the measured run, and the most compiler
    # processes sampled in between (see BuildWatch).
    started: float = 0.0
    ended: float = 0.0
    builds: int = 0

    def as_dict(self):
        return asdict(self)


def basic_auth(client_id, client_secret):
    """Return an `Authorization: Basic` value for form-urlencoded credentials."""
    pair = f"{client_id}:{client_secret}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def run_oha(oha, url, *, scenario, target, concurrency, seconds, method="GET",
            headers=(), body=None, body_lines=None, ok_statuses=(200,)):
    """Run oha for `seconds` at `concurrency` and return its Figure.

    Requests still open at the deadline are aborted by oha and counted in
    neither `ok` nor `failed`.
    """
    args = [oha, "--no-tui", "--output-format", "json", "-z", f"{seconds}s",
            "-c", str(concurrency), "-m", method]
    for header in headers:
        args += ["-H", header]
    if body is not None:
        args += ["-T", "application/x-www-form-urlencoded", "-d", body]
    if body_lines is not None:
        args += ["-T", "application/x-www-form-urlencoded", "-Z", str(body_lines)]
    args.append(url)
    started = time.monotonic()
    output = subprocess.run(args, capture_output=True, text=True, check=True,
                            timeout=seconds + 60).stdout
    report = json.loads(output)
    statuses = {int(code): count
                for code, count in report.get("statusCodeDistribution", {}).items()}
    ok = sum(count for code, count in statuses.items() if code in ok_statuses)
    failed = sum(count for code, count in statuses.items() if code not in ok_statuses)
    total = report["summary"]["total"]
    percentiles = report["latencyPercentiles"]
    return Figure(
        scenario=scenario, target=target, concurrency=concurrency, seconds=total,
        ok=ok, failed=failed, per_second=ok / total if total else 0.0,
        p50_ms=(percentiles.get("p50") or 0.0) * 1000,
        p99_ms=(percentiles.get("p99") or 0.0) * 1000,
        statuses=statuses, started=started, ended=time.monotonic(),
    )


def percentile(sorted_values, fraction):
    """Return the nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def drive_once(port, path, headers, bodies, *, scenario, target, concurrency,
               seconds):
    """POST each body once over `concurrency` keep-alive connections.

    Stops when the bodies run out or after `seconds`, whichever comes first.
    Python's client costs far more CPU per request than oha, and it shares
    the machine with the server, so figures from here are a lower bound.
    """
    lock = threading.Lock()
    pending = iter(bodies)
    latencies = []
    statuses = {}
    deadline = time.monotonic() + seconds

    def next_body():
        with lock:
            return next(pending, None)

    def worker():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        codes = {}
        while time.monotonic() < deadline:
            body = next_body()
            if body is None:
                break
            started = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                # Counted as status 0, a failure; the next request reconnects.
                connection.close()
                status = 0
            mine.append(time.perf_counter() - started)
            codes[status] = codes.get(status, 0) + 1
        connection.close()
        with lock:
            latencies.extend(mine)
            for code, count in codes.items():
                statuses[code] = statuses.get(code, 0) + count

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = time.monotonic()
    elapsed = ended - started

    latencies.sort()
    ok = statuses.get(200, 0)
    return Figure(
        scenario=scenario, target=target, concurrency=concurrency, seconds=elapsed,
        ok=ok, failed=sum(statuses.values()) - ok,
        per_second=ok / elapsed if elapsed else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        statuses=statuses, started=started, ended=ended,
    )
