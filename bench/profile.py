#!/usr/bin/env python3
"""Profiles dbcerts under a W1 or W3 load with `perf` (docs/BENCHMARKS.md, "What limits...").

    .venv/bin/python bench/profile.py w1|w3 [OUT_DIR]

Starts a release `dbcerts serve` on SQLite (P-256), drives it with `dbcerts-bench load` at
concurrency 32 (W1: POST certificates with Digest; W3: a page of 100 of a user with 10,000
certificates, seeded), samples it for 8 s with `perf record -e cpu-clock -g` and counts its
context switches for 4 s with `perf stat`, and writes the symbol and thread breakdowns to
OUT_DIR (docs/bench/profiles). Needs `perf` (Debian's linux-perf) and the release binaries.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
import time

import run as b


def perf_report(data: pathlib.Path, sort: str) -> str:
    out = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio", "-g", "none"],
                         capture_output=True, text=True, check=True).stdout
    lines = [line.rstrip().removesuffix("-      -").rstrip() for line in out.splitlines()
             if "%" in line and not line.startswith("#")]
    return "\n".join(lines[:40]) + "\n"


def main() -> int:
    which = sys.argv[1]
    out = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else b.ROOT / "docs" / "bench" / "profiles"
    out.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="dbcerts-profile-"))
    server = b.Dbcerts(work / "server", "ecdsa-p256", None)
    server.start()
    load = [str(b.BENCH), "load", "--target", "dbcerts", "--header", f"Accept: {b.V2}", "--concurrency", "32",
            "--requests", "40000", *b.digest(server)]
    if which == "w1":
        group = server.project_with_user("w1user")
        load += ["--url", f"{server.root}/api/atlas/v2/groups/{group}/databaseUsers/w1user/certs", "--method", "POST",
                 "--body", '{"monthsUntilExpiration":3}', "--header", "Content-Type: application/json",
                 "--warmup", "200"]
    elif which == "w3":
        server.stop()
        seeded = b.seed(server, 10_000)
        server.start()
        load += ["--url", f"{server.root}/api/atlas/v2/groups/{seeded['hot_project']}/databaseUsers/"
                 f"{seeded['hot_user']}/certs?itemsPerPage=100&pageNum=1", "--warmup", "500"]
    else:
        raise SystemExit("usage: profile.py w1|w3 [OUT_DIR]")
    generator = subprocess.Popen(load, stdout=subprocess.PIPE, text=True)
    time.sleep(3)
    data = work / "perf.data"
    pid = str(server.proc.pid)
    subprocess.run(["perf", "record", "-e", "cpu-clock", "-F", "1999", "-g", "-p", pid, "-o", str(data), "--",
                    "sleep", "8"], capture_output=True, check=True)
    stat = subprocess.run(["perf", "stat", "-e", "context-switches,cpu-clock", "-p", pid, "--", "sleep", "4"],
                          capture_output=True, text=True)
    print(generator.communicate()[0].strip())
    server.stop()
    (out / f"{which}-symbols.txt").write_text(perf_report(data, "symbol"))
    (out / f"{which}-threads.txt").write_text(perf_report(data, "comm"))
    (out / f"{which}-dso.txt").write_text(perf_report(data, "dso"))
    (out / f"{which}-perf-stat.txt").write_text(
        "\n".join(line.rstrip() for line in stat.stderr.splitlines() if "context" in line or "cpu-clock" in line
                  or "elapsed" in line) + "\n")
    print(f"wrote {out}/{which}-*.txt")
    subprocess.run(["rm", "-rf", str(work)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
