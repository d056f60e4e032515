#!/usr/bin/env python3
"""Draws W1 and W3 before and after, as each run's ratio to its peer in the same run (cfssl
P-256 for W1, nginx serving the same bytes for W3), from several results.json files of
bench/run.py, oldest first:

    .venv/bin/python bench/progress.py OUT_DIR LABEL=results.json [LABEL=results.json ...]

writes OUT_DIR/progress-w1.svg and OUT_DIR/progress-w3.svg.

Ratios, not rates: the runs were made on different days, when the shared machine was not
equally fast for everyone; the peer measured in the same run cancels that out. Drawn by
`dbcerts-bench chart` (target/release), one line per workload, one point per results file.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "target" / "release" / "dbcerts-bench"


def ratios(r: dict) -> dict[str, float]:
    """Each workload's throughput over its peer's, in one results file."""
    out = {}
    w1 = r.get("w1", {})
    for backend, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        mine = w1.get(f"dbcerts-{backend}-c32", {}).get("median")
        peer = w1.get("cfssl-ecdsa256-c32", {}).get("median")
        if mine and peer:
            out[f"W1 {name} c=32 / cfssl"] = mine["throughput_rps"] / peer["throughput_rps"]
    for key, entry in r.get("w3w4", {}).items():
        backend, size = key.rsplit("-", 1)
        if size != "100000":
            continue
        name = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[backend]
        peer = entry["nginx"]["median"]["throughput_rps"]
        for scheme in ("digest", "bearer"):
            out[f"W3 {name} 100k {scheme.capitalize()} / nginx"] = entry[scheme]["median"]["throughput_rps"] / peer
    return out


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    stages = []
    for arg in sys.argv[2:]:
        label, path = arg.split("=", 1)
        stages.append((label, ratios(json.loads(pathlib.Path(path).read_text()))))
    xlabel = "stage: " + ", ".join(f"{i + 1} = {label}" for i, (label, _) in enumerate(stages))
    for workload, peer in (("W1", "cfssl P-256"), ("W3", "nginx, same bytes")):
        names = sorted({n for _, r in stages for n in r if n.startswith(workload)})
        args = [str(BENCH), "chart", "--out", str(pathlib.Path(out) / f"progress-{workload.lower()}.svg"),
                "--title", f"{workload} throughput against {peer} in the same run, by stage",
                "--x-label", xlabel, "--y-label", "ratio to the peer (higher is better)"]
        for name in names:
            pts = [f"{i + 1}:{r[name]:.4f}" for i, (_, r) in enumerate(stages) if name in r]
            args += ["--series", f"{name}=" + ",".join(pts)]
        subprocess.run(args, check=True)
    for label, r in stages:
        print(label, {k: round(v, 3) for k, v in r.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
