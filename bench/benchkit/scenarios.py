"""The measured scenarios. Each returns Figures and prints one line per run."""

import json
import os
import random
import shutil
import threading
import time
import urllib.parse
import urllib.request

from . import codes
from .load import basic_auth, drive_once, run_oha
from .process import BenchError, RssSampler
from .seed import filler_client_id
from .tessera import SCOPE

CLIENT_CREDENTIALS_BODY = f"grant_type=client_credentials&scope={SCOPE}"
FORM = "application/x-www-form-urlencoded"
# Time bound of the pass that sends each registered client one request.
CACHE_WARMING_SECONDS = 300


def show(figure):
    print(f"  {figure.scenario:<34} {figure.target:<18} c={figure.concurrency:<3} "
          f"{figure.per_second:9.0f}/s  p50 {figure.p50_ms:7.2f} ms  "
          f"p99 {figure.p99_ms:7.2f} ms  non-2xx {figure.failed}", flush=True)
    return figure


def post_form(url, fields, authorization):
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(fields).encode(),
        headers={"Authorization": authorization, "Content-Type": FORM})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def measure(settings, run_once, warm_up=True):
    """Run `run_once(seconds)` for the warm-up (discarded), then measured."""
    if warm_up and settings.warmup > 0:
        run_once(settings.warmup)
    return show(run_once(settings.duration))


def client_credentials(settings, oha, url, client_id, client_secret, target, server,
                       levels):
    """POST /token with the client credentials grant at each concurrency level."""
    authorization = basic_auth(client_id, client_secret)
    post_form(url, {"grant_type": "client_credentials", "scope": SCOPE}, authorization)
    figures = []
    for concurrency in levels:
        def run_once(seconds):
            cpu_before = server.cpu_seconds()
            figure = run_oha(oha, url, scenario="client credentials", target=target,
                             concurrency=concurrency, seconds=seconds, method="POST",
                             headers=[f"Authorization: {authorization}"],
                             body=CLIENT_CREDENTIALS_BODY)
            figure.server_cpu_s = server.cpu_seconds() - cpu_before
            return figure

        with RssSampler(server) as sampler:
            figure = measure(settings, run_once)
        figure.rss_kib = sampler.max_kib
        figures.append(figure)
    return figures


def service_token(tessera):
    """Return an access token of the bench service client, minted over HTTP."""
    response = post_form(tessera.url("/token"),
                         {"grant_type": "client_credentials", "scope": SCOPE},
                         basic_auth(tessera.service["client_id"],
                                    tessera.service["client_secret"]))
    return response["access_token"]


def introspection(settings, oha, tessera, target, label="introspection"):
    """POST /introspect by the resource server's credentials, of one token."""
    token = service_token(tessera)
    authorization = basic_auth(tessera.resource["client_id"],
                               tessera.resource["client_secret"])
    answer = post_form(tessera.url("/introspect"), {"token": token}, authorization)
    if answer.get("active") is not True:
        raise BenchError(f"introspection of a fresh token returned {answer}")
    body = urllib.parse.urlencode({"token": token})

    def run_once(seconds):
        return run_oha(oha, tessera.url("/introspect"), scenario=label, target=target,
                       concurrency=settings.concurrency, seconds=seconds, method="POST",
                       headers=[f"Authorization: {authorization}"], body=body)

    return measure(settings, run_once)


def jwks(settings, oha, tessera, target):
    """GET /jwks, then again with If-None-Match of the ETag from a first GET."""
    with urllib.request.urlopen(tessera.url("/jwks"), timeout=10) as response:
        etag = response.headers["ETag"]
    if not etag:
        raise BenchError("GET /jwks returned no ETag")
    figures = []
    for label, headers, ok in (("JWKS", [], (200,)),
                               ("JWKS, If-None-Match", [f"If-None-Match: {etag}"], (304,))):
        def run_once(seconds):
            return run_oha(oha, tessera.url("/jwks"), scenario=label, target=target,
                           concurrency=settings.concurrency, seconds=seconds,
                           headers=headers, ok_statuses=ok)

        figures.append(measure(settings, run_once))
    return figures


def code_exchange(settings, tessera, target):
    """POST /token with each of `settings.codes` fresh authorization codes, once."""
    started = time.monotonic()
    verifier, minted = codes.mint_codes(tessera.port, tessera.web["client_id"],
                                        settings.codes)
    minting = time.monotonic() - started
    print(f"  minted {len(minted)} authorization codes in {minting:.1f} s", flush=True)
    headers = {"Authorization": basic_auth(tessera.web["client_id"],
                                           tessera.web["client_secret"]),
               "Content-Type": FORM}
    figure = drive_once(tessera.port, "/token", headers,
                        codes.exchange_bodies(minted, verifier),
                        scenario="code exchange", target=target,
                        concurrency=settings.concurrency, seconds=settings.duration)
    return show(figure)


def readiness(binary, folder, make_tessera, repeats=3):
    """Seconds from `tessera serve` to /readyz 200 on SQLite, cold and warm.

    Cold is a fresh database: serve runs the migrations and generates the
    key ring. Warm is a restart on that database.
    """
    cold, warm = [], []
    for attempt in range(repeats):
        place = os.path.join(folder, f"readiness-{attempt}")
        tessera = make_tessera(place, f"sqlite://{place}/tessera.db")
        try:
            cold.append(tessera.start())
            tessera.stop()
            warm.append(tessera.start())
        finally:
            tessera.stop()
        shutil.rmtree(place, ignore_errors=True)
    return {"cold_s": sorted(cold)[len(cold) // 2], "warm_s": sorted(warm)[len(warm) // 2],
            "cold_all_s": cold, "warm_all_s": warm}


def client_scale(settings, oha, tessera, seeder, target, counts, folder):
    """Client credentials from random clients among 1, 10,000, ... registered.

    Each count is measured twice. The first run starts with Tessera's client
    cache cold, so most requests among many clients are a client's first
    use, which reads the store. Then every client gets one request, and the
    second run measures with every client cached, as in a deployment whose
    clients return within the cache's entry lifetime (5 minutes).
    """
    template = tessera.service_post
    figures = []
    for count in counts:
        seeded = seeder.grow_clients(template["client_id"], count - 1) if count > 1 else 0.0
        lines_path = os.path.join(folder, f"clients-{count}.txt")
        ids = [template["client_id"]] + [filler_client_id(n) for n in range(1, count)]
        random.shuffle(ids)
        bodies = [urllib.parse.urlencode({
            "grant_type": "client_credentials", "scope": SCOPE, "client_id": client_id,
            "client_secret": template["client_secret"]}) for client_id in ids[:100_000]]
        with open(lines_path, "w") as lines:
            lines.writelines(body + "\n" for body in bodies)

        def run_once(seconds, scenario="client credentials, post"):
            return run_oha(oha, tessera.url("/token"), scenario=scenario,
                           target=f"{target} {count} clients",
                           concurrency=settings.concurrency, seconds=seconds,
                           method="POST", body_lines=lines_path)

        print(f"  {count} clients registered (filler rows took {seeded:.1f} s)", flush=True)
        figure = measure(settings, run_once, warm_up=False)
        figure.scale = count
        figures.append(figure)

        started = time.monotonic()
        warming = drive_once(tessera.port, "/token", {"Content-Type": FORM}, bodies,
                             scenario="cache warming",
                             target=target, concurrency=settings.concurrency,
                             seconds=CACHE_WARMING_SECONDS)
        if warming.failed:
            raise BenchError(f"warming the client cache failed: {warming.statuses}")
        print(f"  warmed the client cache in {time.monotonic() - started:.1f} s", flush=True)
        with RssSampler(tessera.server) as sampler:
            figure = measure(settings, lambda seconds: run_once(
                seconds, "client credentials, post, cache warm"), warm_up=False)
        figure.rss_kib = sampler.max_kib
        figure.scale = count
        figures.append(figure)
    return figures


def token_scale(settings, oha, tessera, seeder, target, counts):
    """Introspection latency with 1, 5,000,000, ... recorded tokens."""
    figures = []
    for count in counts:
        seeded = seeder.grow_tokens(count - 1) if count > 1 else 0.0
        print(f"  {count} token records (filler rows took {seeded:.1f} s)", flush=True)
        figure = introspection(settings, oha, tessera, f"{target} {count} tokens",
                               label="introspection, recorded tokens")
        figure.scale = count
        figures.append(figure)
    return figures


def pruner(settings, oha, tessera, seeder, target, rows):
    """p99 of client credentials right after a restart, without and with pruning.

    The pruner's first pass starts with the server, so a restart after
    adding `rows` expired records runs the load while they are deleted.
    """
    client = tessera.service

    def run_once(seconds, label):
        return run_oha(oha, tessera.url("/token"), scenario=label, target=target,
                       concurrency=settings.concurrency, seconds=seconds, method="POST",
                       headers=[f"Authorization: {basic_auth(client['client_id'], client['client_secret'])}"],
                       body=CLIENT_CREDENTIALS_BODY)

    tessera.stop()
    tessera.start()
    baseline = show(run_once(settings.duration, "client credentials, restarted"))

    seeded = seeder.add_expired_tokens(rows)
    print(f"  {rows} expired token records (filler rows took {seeded:.1f} s)", flush=True)
    tessera.stop()
    tessera.start()
    started = time.monotonic()
    prune_seconds = []
    stop = threading.Event()

    def watch():
        while not stop.wait(0.5):
            if not seeder.expired_left():
                prune_seconds.append(time.monotonic() - started)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    during = show(run_once(settings.duration, "client credentials, pruning"))
    # Pruning may outlast the load; wait for it a while longer.
    watcher.join(timeout=120)
    stop.set()
    return baseline, during, (prune_seconds[0] if prune_seconds else None)

