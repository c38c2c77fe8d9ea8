"""Child processes of the bench: start, wait until ready, sample memory, stop."""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


class BenchError(Exception):
    """A setup step or a check of the bench failed; the message names it."""


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args, env=None, input_text=None, timeout=600):
    """Run a command to completion and return its standard output."""
    result = subprocess.run(
        args, env=env, input=input_text, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise BenchError(
            f"{' '.join(map(str, args))} failed with exit code {result.returncode}: "
            f"{result.stderr.strip()[-2000:]}"
        )
    return result.stdout


def http_status(url, timeout=2.0):
    """Return the status of a GET of `url`, or None when the connection fails."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


class Server:
    """One server process whose output goes to a log file."""

    def __init__(self, name, args, env, log_path, cwd=None):
        self.name = name
        self.log_path = log_path
        self.started_at = time.monotonic()
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self):
        return self.process.pid

    def wait_for_status(self, url, status=200, timeout=120.0, interval=0.005):
        """Poll `url` until it returns `status`; return the seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with code {self.process.returncode} before "
                    f"{url} returned {status}; see {self.log_path}:\n{self.log_tail()}"
                )
            if http_status(url) == status:
                return time.monotonic() - self.started_at
            time.sleep(interval)
        raise BenchError(f"{self.name}: {url} did not return {status} within {timeout:.0f} s")

    def wait_for_line(self, text, timeout=60.0):
        """Wait until the log contains `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited early:\n{self.log_tail()}")
            with open(self.log_path, errors="replace") as log:
                if text in log.read():
                    return
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not print {text!r} within {timeout:.0f} s")

    def cpu_seconds(self):
        """Return the user and system CPU time of all its threads so far."""
        with open(f"/proc/{self.pid}/stat") as stat:
            # The command name in field 2 may hold spaces; count after it.
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self):
        """Return the resident set size (VmRSS) in KiB, or None after exit."""
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def log_tail(self, lines=20):
        with open(self.log_path, errors="replace") as log:
            return "".join(log.readlines()[-lines:])

    def stop(self, timeout=15.0):
        """Send SIGTERM, then SIGKILL if the process is still running after `timeout`."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait()


class RssSampler:
    """Samples a server's VmRSS every `interval` seconds while in a `with` block."""

    def __init__(self, server, interval=0.1):
        self.server = server
        self.interval = interval
        self.max_kib = 0
        self._stop = None
        self._thread = None

    def __enter__(self):
        import threading

        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(self.interval):
                self.max_kib = max(self.max_kib, self.server.rss_kib() or 0)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


BUILD_COMMANDS = {"rustc", "cc1", "cc1plus", "clippy-driver", "ld", "cargo", "cargo-fuzz"}


def build_processes():
    """Count running compiler and linker processes, a sign of parallel builds."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() in BUILD_COMMANDS:
                    count += 1
        except OSError:
            continue
    return count


class BuildWatch:
    """Samples `build_processes()` every `interval` seconds in a `with` block."""

    def __init__(self, interval=2.0):
        self.interval = interval
        self.timeline = []

    @property
    def samples(self):
        return len(self.timeline)

    @property
    def samples_with_builds(self):
        return sum(1 for _, count in self.timeline if count)

    @property
    def max_count(self):
        return max((count for _, count in self.timeline), default=0)

    def builds_between(self, start, end):
        """Return the most compiler processes sampled between two monotonic times."""
        return max((count for when, count in self.timeline if start <= when <= end),
                   default=0)

    def __enter__(self):
        import threading

        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(self.interval):
                self.timeline.append((time.monotonic(), build_processes()))

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False
