#!/usr/bin/env python3
"""Two dbcerts nodes on one PostgreSQL database issuing at once (docs/BENCHMARKS.md, "Two
nodes on one PostgreSQL").

Starts nodes A and B (B with A's master key) on a fresh database of the cluster in
DBCERTS_TEST_POSTGRES_URL, makes two projects with one MANAGED user each, then runs two
`dbcerts-bench load` processes at the same time, one against each node, issuing P-256
certificates: into different projects (A into the first, B into the second) and into the same
project (both into the first). Prints one JSON line per scenario: the two loads' throughputs
added, the higher of their p99 latencies, and their errors.

    tests/blackbox/pg_cluster.py run -- bench/two_nodes.py [--bin-dir target/release] [--runs 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import pathlib
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin-dir", default=str(run.ROOT / "target" / "release"),
                   help="where dbcerts and dbcerts-bench are")
    p.add_argument("--requests", type=int, default=2000, help="per node and run")
    p.add_argument("--concurrency", type=int, default=16, help="per node")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    run.DBCERTS = pathlib.Path(args.bin_dir) / "dbcerts"
    run.BENCH = pathlib.Path(args.bin_dir) / "dbcerts-bench"

    work = pathlib.Path(tempfile.mkdtemp(prefix="dbcerts-two-nodes-"))
    url = run.database_for("postgres", "two_nodes")
    a = run.Dbcerts(work / "a", "ecdsa-p256", url)
    b = run.Dbcerts(work / "b", "ecdsa-p256", url, "--master-key-file", str(work / "a" / "master.key"))
    try:
        a.start()
        (work / "b").mkdir(mode=0o700)
        shutil.copy(work / "a" / "bootstrap-credentials.json", work / "b" / "bootstrap-credentials.json")
        b.start()
        first, second = a.project_with_user("alice"), a.project_with_user("bob")
        body = '{"monthsUntilExpiration":3}'

        def certs(node: run.Dbcerts, group: str, user: str) -> str:
            return f"{node.root}/api/atlas/v2/groups/{group}/databaseUsers/{user}/certs"

        scenarios = {
            "different-projects": [(a, certs(a, first, "alice")), (b, certs(b, second, "bob"))],
            "same-project": [(a, certs(a, first, "alice")), (b, certs(b, first, "alice"))],
        }
        for name, targets in scenarios.items():
            totals, p99s, errors = [], [], 0
            for i in range(args.runs):
                with concurrent.futures.ThreadPoolExecutor(2) as pool:
                    loads = [pool.submit(run.load, "dbcerts", target, method="POST", body=body,
                                         concurrency=args.concurrency, requests_=args.requests, warmup=100,
                                         auth=run.digest(node), pid=node.proc.pid,
                                         label=f"two-nodes-{name}-{i}")
                             for node, target in targets]
                    results = [f.result() for f in loads]
                totals.append(sum(r["throughput_rps"] for r in results))
                p99s.append(max(r["latency_ms"]["p99"] for r in results))
                errors += sum(r["errors"] for r in results)
            print(json.dumps({"scenario": name, "runs": args.runs, "requests_per_node": args.requests,
                              "concurrency_per_node": args.concurrency,
                              "certificates_per_s": round(statistics.median(totals), 1),
                              "p99_ms": round(statistics.median(p99s), 1), "errors": errors,
                              "raw_certificates_per_s": [round(t, 1) for t in totals]}), flush=True)
    finally:
        b.stop()
        a.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
