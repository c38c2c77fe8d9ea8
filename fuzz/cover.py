"""Picks at most LIMIT files of a corpus that together cover the most edges.

Usage: cover.py FUZZ_BINARY CORPUS LIMIT EDGE_CACHE.json

Measures the edges of each input in its own process (libFuzzer -merge=1
into an empty folder, with counters and value profiles off), caches them
in EDGE_CACHE.json, then applies greedy set cover. Prints the chosen file
names and, on standard error, the share of the corpus's edges they cover.
Run it on a corpus that `cargo fuzz cmin` minimized first: it starts one
process per file.
"""
import json, os, subprocess, sys, tempfile
binary, folder, limit, cache = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
edges = json.load(open(cache)) if os.path.exists(cache) else {}
with tempfile.TemporaryDirectory() as scratch:
    empty = os.path.join(scratch, "empty")
    single = os.path.join(scratch, "single")
    control = os.path.join(scratch, "control")
    os.makedirs(empty)
    os.makedirs(single)
    for name in sorted(os.listdir(folder)):
        if name in edges:
            continue
        with open(os.path.join(folder, name), "rb") as source:
            data = source.read()
        with open(os.path.join(single, "input"), "wb") as target:
            target.write(data)
        subprocess.run([binary, "-merge=1", "-use_counters=0", "-use_value_profile=0",
                        f"-merge_control_file={control}", empty, single],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        found = []
        if os.path.exists(control):
            for line in open(control):
                parts = line.split()
                if parts and parts[0] == "FT":
                    found = parts[2:]
            os.remove(control)
        edges[name] = found
json.dump(edges, open(cache, "w"))
sets = {name: set(found) for name, found in edges.items() if os.path.exists(os.path.join(folder, name))}
universe = set().union(*sets.values())
covered, chosen = set(), []
while covered != universe and len(chosen) < limit:
    best = max(sets, key=lambda name: len(sets[name] - covered))
    chosen.append(best)
    covered |= sets[best]
next_gain = max((len(found - covered) for found in sets.values()), default=0)
print(f"# {len(chosen)} of {len(sets)} files cover {len(covered)} of {len(universe)} edges "
      f"({100 * len(covered) / len(universe):.1f}%); the best file left out adds {next_gain}",
      file=sys.stderr)
print("\n".join(chosen))
