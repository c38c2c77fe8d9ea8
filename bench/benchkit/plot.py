"""Plot client credentials tokens/s and p99 against concurrency.

Usage: python plot.py FIGURES.json OUT.png, with the venv's matplotlib.
"""

import json
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source, destination):
    with open(source) as data:
        plotted = json.load(data)
    figures = plotted["figures"]
    targets = sorted({f["target"] for f in figures})
    all_levels = sorted({f["concurrency"] for f in figures})
    fig, (throughput, p99) = plt.subplots(1, 2, figsize=(11, 4.2))
    for target in targets:
        points = sorted((f["concurrency"], f["per_second"], f["p99_ms"])
                        for f in figures if f["target"] == target)
        levels = [point[0] for point in points]
        style = "--" if target.startswith("peer") else "-"
        overlapped = any(f.get("builds") for f in figures if f["target"] == target)
        label = target + (" *" if overlapped else "")
        throughput.plot(levels, [point[1] for point in points], style, marker="o", label=label)
        p99.plot(levels, [point[2] for point in points], style, marker="o", label=label)
    for axes, title, unit in ((throughput, "Tokens per second", "tokens/s"),
                              (p99, "p99 latency", "ms")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(all_levels, [str(level) for level in all_levels])
        axes.set_xlabel("concurrency (connections)")
        axes.set_ylabel(unit)
        axes.set_title(f"Client credentials: {title}")
        axes.grid(True, alpha=0.3)
        axes.set_ylim(bottom=0)
    p99.legend(fontsize="small")
    fig.suptitle(textwrap.fill(plotted["caption"], 140), fontsize="small")
    fig.tight_layout()
    fig.savefig(destination, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
