"""bench/run: Tessera's load figures beside node-oidc-provider's, from one run."""

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time

from . import peer, report, scenarios, tools
from .postgres import Cluster
from .process import BenchError, BuildWatch, run
from .seed import PostgresSeeder, SqliteSeeder
from .settings import Settings
from .tessera import Tessera


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Load bench of Tessera beside node-oidc-provider on loopback. "
                    "Settings come from BENCH_* environment variables; see "
                    "docs/benchmarks.md.")
    parser.add_argument("--smoke", action="store_true",
                        help="one short client credentials run of each server; fails "
                             "on zero throughput or any non-2xx response")
    parser.add_argument("--out", default=os.path.join(tools.TARGET, "bench-results"),
                        help="folder for results.json, results.md and load.png "
                             "(default: target/bench-results)")
    return parser.parse_args(argv)


def load_average():
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])


def machine():
    cpu = "unknown"
    for line in run(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    with open("/proc/meminfo") as meminfo:
        memory_kib = int(meminfo.readline().split()[1])
    return {
        "nproc": int(run(["nproc"]).strip()),
        "cpu": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": os.uname().release,
        "node": run(["node", "--version"]).strip(),
        "tessera_commit": run(["git", "-C", tools.ROOT, "rev-parse", "--short", "HEAD"]).strip(),
    }


def main(argv):
    arguments = parse_arguments(argv)
    settings = Settings.from_environment(arguments.smoke)
    started = time.monotonic()
    oha = tools.oha()
    binary = tools.release_build()
    peer_version = peer.install()
    prepared = time.monotonic() - started

    results = {"machine": machine(), "settings": settings.describe(),
               "peer_version": peer_version, "oha": run([oha, "--version"]).strip(),
               "load_average_start": load_average(), "figures": []}
    if results["load_average_start"] > report.QUIET_LOAD:
        print(f"WARNING: 1-minute load average is {results['load_average_start']:.2f}; "
              "figures measured now are skewed by other work on this machine",
              file=sys.stderr, flush=True)

    if not arguments.smoke:
        results["crypto_floor"] = tools.crypto_floor()

    folder = tempfile.mkdtemp(prefix="tessera-bench-")
    # The postgres user must reach its cluster folder inside.
    os.chmod(folder, 0o711)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
        jwk = tools.resource_server_jwk(os.path.join(folder, "resource.jwk"))
        runner = Runner(settings, oha, binary, folder, jwk, results, cleanup)
        with BuildWatch() as builds:
            if arguments.smoke:
                ok = runner.smoke()
            else:
                runner.full()
                ok = True
        for figure in results["figures"]:
            figure["builds"] = builds.builds_between(figure["started"], figure["ended"])
        results["build_processes"] = {"max": builds.max_count,
                                      "samples_with_builds": builds.samples_with_builds,
                                      "samples": builds.samples}

    results["load_average_end"] = load_average()
    results["seconds_total"] = time.monotonic() - started
    results["seconds_preparing"] = prepared
    os.makedirs(arguments.out, exist_ok=True)
    name = "smoke" if arguments.smoke else "results"
    with open(os.path.join(arguments.out, f"{name}.json"), "w") as out:
        json.dump(results, out, indent=2)
    report.print_summary(results)
    if not arguments.smoke:
        with open(os.path.join(arguments.out, "results.md"), "w") as out:
            out.write(report.markdown(results))
        report.plot(results, os.path.join(arguments.out, "load.png"))
    print(f"results in {arguments.out}; {results['seconds_total']:.0f} s in all, "
          f"{prepared:.0f} s of it building and installing")
    return 0 if ok else 1


class Runner:
    """Starts the servers of one bench run and records every figure."""

    def __init__(self, settings, oha, binary, folder, jwk, results, cleanup):
        self.settings = settings
        self.oha = oha
        self.binary = binary
        self.folder = folder
        self.jwk = jwk
        self.results = results
        self.cleanup = cleanup
        self.cluster = None

    def record(self, backend, figures):
        for figure in figures:
            self.results["figures"].append({"backend": backend, **figure.as_dict()})

    def tessera(self, name, backend, log_filter="warn"):
        """Register a fresh deployment on `backend` and start it."""
        place = os.path.join(self.folder, name)
        if backend == "sqlite":
            url = f"sqlite://{place}/tessera.db"
        else:
            if self.cluster is None:
                self.cluster = Cluster(self.folder)
                self.cleanup.callback(self.cluster.stop)
                self.results["postgres"] = self.cluster.psql("postgres", "SHOW server_version").strip()
            url = self.cluster.create_database(name.replace("-", "_"))
        tessera = Tessera(self.binary, place, url, log_filter)
        self.cleanup.callback(tessera.stop)
        tessera.register(self.jwk)
        tessera.start()
        if backend == "sqlite":
            tessera.seeder = SqliteSeeder(os.path.join(place, "tessera.db"))
        else:
            tessera.seeder = PostgresSeeder(self.cluster, name.replace("-", "_"))
        return tessera

    def peer_client_credentials(self, encrypt, levels):
        target = "peer " + ("encrypted" if encrypt else "plain")
        print(f"{target} (oidc-provider {self.results['peer_version']})", flush=True)
        server = peer.Peer(self.folder, self.jwk, encrypt)
        self.cleanup.callback(server.stop)
        self.results.setdefault("rss_kib", {})[f"{target} idle"] = server.server.rss_kib()
        figures = scenarios.client_credentials(
            self.settings, self.oha, server.url("/token"), server.client_id,
            server.client_secret, target, server.server, levels)
        server.stop()
        return figures

    def smoke(self):
        level = self.settings.levels
        print("tessera sqlite", flush=True)
        tessera = self.tessera("smoke", "sqlite")
        figures = scenarios.client_credentials(
            self.settings, self.oha, tessera.url("/token"), tessera.service["client_id"],
            tessera.service["client_secret"], "tessera sqlite", tessera.server, level)
        tessera.stop()
        figures += self.peer_client_credentials(True, level)
        self.record("smoke", figures)
        failures = [f"{f.target}: {f.ok} ok, {f.failed} non-2xx ({f.statuses})"
                    for f in figures if f.ok == 0 or f.failed]
        for failure in failures:
            print(f"SMOKE FAILED: {failure}", file=sys.stderr)
        return not failures

    def full(self):
        settings = self.settings
        print("readiness on SQLite", flush=True)
        self.results["readiness"] = scenarios.readiness(
            self.binary, self.folder,
            lambda place, url: Tessera(self.binary, place, url))
        print(f"  {self.results['readiness']}", flush=True)

        for backend in settings.backends:
            target = f"tessera {backend}"
            print(target, flush=True)
            tessera = self.tessera(f"main-{backend}", backend)
            time.sleep(1)
            rss = self.results.setdefault("rss_kib", {})
            rss[f"{target} idle"] = tessera.server.rss_kib()
            figures = scenarios.client_credentials(
                settings, self.oha, tessera.url("/token"), tessera.service["client_id"],
                tessera.service["client_secret"], target, tessera.server, settings.levels)
            figures.append(scenarios.introspection(settings, self.oha, tessera, target))
            figures += scenarios.jwks(settings, self.oha, tessera, target)
            figures.append(scenarios.code_exchange(settings, tessera, target))
            rss[f"{target} after load"] = tessera.server.rss_kib()
            tessera.stop()
            self.record(backend, figures)

        for encrypt in (True, False):
            self.record("peer", self.peer_client_credentials(encrypt, settings.levels))

        if settings.scale:
            for backend in settings.backends:
                self.scale(backend)
        else:
            self.results["scale_skipped"] = True

    def scale(self, backend):
        settings = self.settings
        target = f"tessera {backend}"
        print(f"{target}: scale", flush=True)
        tessera = self.tessera(f"scale-{backend}", backend)
        self.record(backend, scenarios.token_scale(
            settings, self.oha, tessera, tessera.seeder, target, settings.scale_tokens))
        self.record(backend, scenarios.client_scale(
            settings, self.oha, tessera, tessera.seeder, target, settings.scale_clients,
            self.folder))
        baseline, during, prune_seconds = scenarios.pruner(
            settings, self.oha, tessera, tessera.seeder, target, settings.prune_rows)
        self.record(backend, [baseline, during])
        self.results.setdefault("prune_seconds", {})[backend] = prune_seconds
        tessera.stop()


def entry(argv):
    # SIGTERM unwinds like an exception, so the servers and the cluster stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return main(argv)
    except BenchError as error:
        print(f"bench/run: {error}", file=sys.stderr)
        return 2
