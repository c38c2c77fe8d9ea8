"""Tables of one run's figures, on the terminal and in Markdown, and the plot."""

import json
import os
import subprocess
import tempfile

from . import tools

CLIENT_CREDENTIALS = "client credentials"
PEERS = ("peer encrypted", "peer plain")
# A 1-minute load average above this at the start marks the run as measured
# under load from other work. The figure at the end includes the bench's own
# load, so it is only reported.
QUIET_LOAD = 1.5


def under_load(results):
    builds = results.get("build_processes", {}).get("samples_with_builds", 0)
    return results["load_average_start"] > QUIET_LOAD or builds > 0


def conditions(results):
    """Return one line naming the machine and whether other work loaded it."""
    machine = results["machine"]
    line = (f"{machine['nproc']} cores ({machine['cpu']}), 1-minute load average "
            f"{results['load_average_start']:.2f} at start, "
            f"{results.get('load_average_end', 0):.2f} at end (the bench's own load included)")
    builds = results.get("build_processes")
    if builds:
        line += (f", compiler processes seen in {builds['samples_with_builds']} of "
                 f"{builds['samples']} samples (* marks runs they overlapped)")
    if under_load(results):
        line = "MEASURED UNDER LOAD from other work, not comparable: " + line
    return line


def _figures(results, scenario):
    return [f for f in results["figures"] if f["scenario"] == scenario]


def _find(figures, target, concurrency):
    for figure in figures:
        if figure["target"] == target and figure["concurrency"] == concurrency:
            return figure
    return None


def _marked(figure):
    """Return the figure's target, starred when compiler processes ran during it."""
    return figure["target"] + (" *" if figure.get("builds") else "")


def _mib(kib):
    return f"{kib / 1024:.0f}" if kib else "-"


def figure_rows(figures):
    """Rows of target, concurrency, per second, p50, p99, non-2xx, peak RSS."""
    return [[_marked(f), f["scenario"], str(f["concurrency"]), f"{f['per_second']:.0f}",
             f"{f['p50_ms']:.2f}", f"{f['p99_ms']:.2f}", str(f["failed"]), _mib(f["rss_kib"])]
            for f in figures]


FIGURE_HEADER = ["target", "scenario", "c", "per s", "p50 ms", "p99 ms", "non-2xx",
                 "peak RSS MiB"]


SIDE_BY_SIDE_HEADER = ["c", "Tessera", "tokens/s", "p50 ms", "p99 ms", "peer", "tokens/s",
                       "p50 ms", "p99 ms", "ratio"]


def side_by_side_rows(results):
    """Tessera beside each peer mode per concurrency, with the tokens/s ratio."""
    figures = _figures(results, CLIENT_CREDENTIALS)
    tesseras = sorted({f["target"] for f in figures if f["target"].startswith("tessera")},
                      reverse=True)
    levels = sorted({f["concurrency"] for f in figures})
    rows = []
    for target in tesseras:
        for peer in PEERS:
            for level in levels:
                ours, theirs = _find(figures, target, level), _find(figures, peer, level)
                if not ours or not theirs:
                    continue
                ratio = ours["per_second"] / theirs["per_second"] if theirs["per_second"] else 0
                rows.append([str(level), _marked(ours), f"{ours['per_second']:.0f}",
                             f"{ours['p50_ms']:.2f}", f"{ours['p99_ms']:.2f}", _marked(theirs),
                             f"{theirs['per_second']:.0f}", f"{theirs['p50_ms']:.2f}",
                             f"{theirs['p99_ms']:.2f}", f"{ratio:.2f}"])
    return rows


CPU_HEADER = ["target", "c", "tokens/s", "server cores", "CPU us/token",
              "tokens per CPU-s", "of floor"]


def cpu_rows(results):
    """Server CPU per client credentials token, against the crypto floor.

    "of floor" divides the tokens per CPU-second by what one core could mint
    at the floor that `openssl speed` measured at the start of the run.
    """
    floor = results.get("crypto_floor")
    rows = []
    for f in _figures(results, CLIENT_CREDENTIALS):
        cpu = f.get("server_cpu_s", 0.0)
        if not cpu or not f["ok"]:
            continue
        per_cpu_second = f["ok"] / cpu
        share = f"{per_cpu_second * floor['token_us'] / 1e6:.2f}" if floor else "-"
        rows.append([_marked(f), str(f["concurrency"]), f"{f['per_second']:.0f}",
                     f"{cpu / f['seconds']:.2f}", f"{1e6 / per_cpu_second:.0f}",
                     f"{per_cpu_second:.0f}", share])
    return rows


def _text_table(header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths))
             for row in [header, *rows]]
    return "\n".join(lines)


def _markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def sections(results):
    """Return the run as (title, header, rows) tables."""
    tables = []
    cc = _figures(results, CLIENT_CREDENTIALS)
    tables.append(("Client credentials (encrypted token; the plain peer signs only)",
                   FIGURE_HEADER, figure_rows(cc)))
    side_by_side = side_by_side_rows(results)
    if side_by_side:
        tables.append(("Client credentials, Tessera beside node-oidc-provider "
                       "(ratio: Tessera's tokens/s over the peer's)",
                       SIDE_BY_SIDE_HEADER, side_by_side))
    cpu = cpu_rows(results)
    if cpu:
        floor = results.get("crypto_floor")
        title = "Server CPU per client credentials token"
        if floor:
            title += (f" (crypto floor {floor['token_us']:.0f} us a token: ES256 sign "
                      f"{floor['ecdsa_p256_sign_us']:.0f} us, the ephemeral key costed as "
                      f"one more, ECDH {floor['ecdh_p256_us']:.0f} us, by openssl speed)")
        tables.append((title, CPU_HEADER, cpu))
    others = [f for f in results["figures"] if f["scenario"] != CLIENT_CREDENTIALS]
    if others:
        tables.append(("Other scenarios", FIGURE_HEADER, figure_rows(others)))
    facts = []
    for name, kib in results.get("rss_kib", {}).items():
        facts.append([f"VmRSS {name}", f"{_mib(kib)} MiB"])
    readiness = results.get("readiness")
    if readiness:
        facts.append(["serve to /readyz 200, SQLite, fresh store (median of 3)",
                      f"{readiness['cold_s'] * 1000:.0f} ms"])
        facts.append(["serve to /readyz 200, SQLite, restart (median of 3)",
                      f"{readiness['warm_s'] * 1000:.0f} ms"])
    for backend, seconds in results.get("prune_seconds", {}).items():
        facts.append([f"pruning {results['settings']['prune_rows']} expired records, {backend}",
                      f"{seconds:.1f} s" if seconds is not None else "not finished"])
    facts.append(["1-minute load average at start / end",
                  f"{results['load_average_start']:.2f} / {results.get('load_average_end', 0):.2f}"])
    tables.append(("Memory, start-up and conditions", ["measure", "value"], facts))
    return tables


def print_summary(results):
    print(f"\n{conditions(results)}")
    for title, header, rows in sections(results):
        print(f"\n{title}\n{_text_table(header, rows)}")
    print()


def markdown(results):
    machine = results["machine"]
    parts = [f"Machine: {machine['nproc']} cores ({machine['cpu']}), "
             f"{machine['memory_gib']} GiB, kernel {machine['kernel']}, node {machine['node']}, "
             f"oidc-provider {results['peer_version']}, {results['oha']}, "
             f"PostgreSQL {results.get('postgres', '-')}, Tessera {machine['tessera_commit']}.",
             f"Settings: {json.dumps(results['settings'])}",
             conditions(results) + "."]
    for title, header, rows in sections(results):
        parts.append(f"### {title}\n\n{_markdown_table(header, rows)}")
    return "\n\n".join(parts) + "\n"


def plot(results, path):
    """Draw throughput and p99 against concurrency for each client credentials target."""
    python = tools.plot_python()
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot.py")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as data:
        json.dump({"figures": _figures(results, CLIENT_CREDENTIALS),
                   "caption": f"bench/run: {conditions(results)}"}, data)
    try:
        subprocess.run([python, script, data.name, path], check=True, timeout=300)
    finally:
        os.unlink(data.name)
