#!/usr/bin/env python3
"""Turns docs/bench/results.json (bench/run.py) into docs/bench/tables.md and the W4 chart
docs/bench/w4-growth.svg (drawn by `dbcerts-bench chart`). Every figure is a median of the
runs recorded; each table names the command that reproduces it."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "target" / "release" / "dbcerts-bench"


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def w1_table(r: dict) -> list[str]:
    w = r.get("w1")
    if not w:
        return []
    out = ["### W1: ECDSA P-256 issuance (certificate + key per request)", "",
           "Command: `scripts/bench w1`. dbcerts commits each certificate (and its audit entry) durably "
           "before answering; cfssl stores nothing.", "",
           row("concurrency", "server", "certificates/s", "p50 ms", "p90 ms", "p99 ms", "max ms",
               "peak RSS MiB", "vs cfssl P-256 (throughput)", "errors"),
           row(*["---"] * 10)]
    for c in (8, 32):
        peer = w.get(f"cfssl-ecdsa256-c{c}", {}).get("median")
        for key, name in ((f"dbcerts-sqlite-c{c}", "dbcerts, SQLite"), (f"dbcerts-postgres-c{c}", "dbcerts, PostgreSQL"),
                          (f"cfssl-ecdsa256-c{c}", "cfssl P-256"), (f"cfssl-rsa2048-c{c}", "cfssl RSA-2048")):
            m = w.get(key, {}).get("median")
            if not m:
                continue
            ratio = f"{m['throughput_rps'] / peer['throughput_rps']:.2f}x" if peer else "-"
            out.append(row(c, name, fmt(m["throughput_rps"], 0), fmt(m["p50_ms"], 2), fmt(m["p90_ms"], 2),
                           fmt(m["p99_ms"], 2), fmt(m["max_ms"], 1), fmt(m.get("peak_rss_mib", 0)), ratio,
                           m["errors"]))
    for backend in ("sqlite", "postgres"):
        j = w.get(f"dbcerts-{backend}-journal")
        if j:
            out.append(f"\nJournal on {backend}: {int(j['writes']):,} writes in {int(j['commits']):,} commits "
                       f"(mean group commit {j['mean_batch']:.2f} writes).")
    return out + [""]


def w2_table(r: dict) -> list[str]:
    w = r.get("w2")
    if not w:
        return []
    out = ["### W2: RSA-4096 issuance (the Atlas default)", "",
           "Command: `scripts/bench w2`. Key pool of 32 keys; raw key generation measured by "
           f"`dbcerts-bench keygen --threads 2 --keys {next(iter(w.values()))['keygen']['raw'][0]['keys']}` in the same run, "
           "while the server's pool was full (idle).", "",
           row("backend", "measure", "dbcerts", "limit / target", "ratio"), row(*["---"] * 5)]
    for backend, b in w.items():
        pooled, sustained = b["pooled"]["median"], b["sustained"]["median"]
        raw = b["keygen"]["median_keys_per_second"]
        refill = b["list_during_refill"]["median"]
        out += [
            row(backend, "POST p50 from the pool (c=1)", f"{fmt(pooled['p50_ms'], 2)} ms", "< 10 ms",
                f"{pooled['p50_ms'] / 10:.2f} of the limit"),
            row(backend, "POST p99 from the pool (c=1)", f"{fmt(pooled['p99_ms'], 2)} ms", "-", "-"),
            row(backend, "sustained issuance, pool drained (c=4)", f"{fmt(sustained['throughput_rps'], 2)} /s",
                f"raw keygen {fmt(raw, 2)} keys/s (2 threads)", f"{sustained['throughput_rps'] / raw:.0%} (target >= 90%)"),
            row(backend, "  the same, run by run (sustained / keygen of that run)", "", "",
                ", ".join(f"{s['throughput_rps'] / k['keys_per_second']:.0%}"
                          for s, k in zip(b["sustained"]["raw"], b["keygen"]["raw"]))),
            row(backend, "list p99 while the pool refills (c=8)", f"{fmt(refill['p99_ms'], 2)} ms", "< 50 ms",
                f"{refill['p99_ms'] / 50:.2f} of the limit"),
            row(backend, "list throughput while the pool refills", f"{fmt(refill['throughput_rps'], 0)} /s", "-", "-"),
        ]
    return out + [""]


def w3_table(r: dict) -> list[str]:
    w = r.get("w3w4")
    if not w:
        return []
    out = ["### W3/W4: listing a page of 100 of a user with 10,000 certificates (concurrency 32)", "",
           "Command: `scripts/bench w3`. nginx serves the exact bytes of the same response as a static file; "
           "every response of both was compared byte for byte with them.", "",
           row("store", "stored certificates", "client", "requests/s", "p50 ms", "p90 ms", "p99 ms", "max ms",
               "peak RSS MiB", "vs nginx (throughput)", "errors"),
           row(*["---"] * 11)]
    for key, e in w.items():
        backend, size = key.rsplit("-", 1)
        nginx = e["nginx"]["median"]
        for scheme in ("digest", "bearer", "nginx"):
            m = e[scheme]["median"]
            who = {"digest": "dbcerts, Digest", "bearer": "dbcerts, Bearer", "nginx": "nginx (same bytes)"}[scheme]
            out.append(row(backend, f"{int(size):,}", who, fmt(m["throughput_rps"], 0), fmt(m["p50_ms"], 2),
                           fmt(m["p90_ms"], 2), fmt(m["p99_ms"], 2), fmt(m["max_ms"], 1),
                           fmt(m.get("peak_rss_mib", 0)), f"{m['throughput_rps'] / nginx['throughput_rps']:.2f}x",
                           m["errors"]))
    out += ["", row("store", "stored certificates", "seed time s", "startup to first answer, ms (median of runs)",
                    "page bytes"), row(*["---"] * 5)]
    for key, e in w.items():
        backend, size = key.rsplit("-", 1)
        st = sorted(e["startup_seconds"])
        out.append(row(backend, f"{int(size):,}", fmt(e["seed"]["wall_seconds"], 1),
                       fmt(st[len(st) // 2] * 1000, 0) + f" ({len(st)} starts)", f"{e['page_bytes']:,}"))
    return out + [""]


def storage_table(r: dict) -> list[str]:
    s = r.get("storage")
    if not s:
        return []
    out = ["### SQLite bytes per certificate", "",
           "File growth over the W1 (P-256) and W2 (RSA-4096) runs, WAL checkpointed, divided by the "
           "certificates issued: the row, its indexes and its audit entry.", "",
           row("algorithm", "certificates", "bytes", "bytes per certificate", "limit"), row(*["---"] * 5)]
    limits = {"ecdsa-p256": 1536, "rsa-4096": 4096}
    for algo, e in s.items():
        out.append(row(algo, f"{e['certificates']:,}", f"{e['bytes']:,}", fmt(e["bytes_per_certificate"], 0),
                       f"{limits.get(algo, '-'):,}"))
    return out + [""]


def replay_table(r: dict) -> list[str]:
    w = r.get("replay")
    if not w:
        return []
    m = w["machine"]
    out = ['### The cost of `digest-replay-check = "store"` (Digest, one nonce-count write per request)', "",
           "Command: `scripts/bench replay`. The same data (10,000 certificates stored), the two modes in "
           f"turn, run by run; measured {w['date']} on {m['cpu_model']}, {m['cores']} cores.", "",
           row("store", "workload", "mode", "requests/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "vs node",
               "server CPU ms per request", "database CPU ms per request", "journal commits per request",
               "writes per commit", "errors"),
           row(*["---"] * 14)]
    for backend in ("sqlite", "postgres"):
        e = w.get(backend)
        if not e:
            continue
        for workload, name in (("list", "page of 100, c=32"), ("issue", "P-256 issuance, c=8")):
            base = e["node"][workload]["median"]["throughput_rps"]
            for mode in ("node", "store"):
                md = e[mode][workload]["median"]
                j = e[mode][workload]["journal"]
                commits, writes = sum(x["commits"] for x in j), sum(x["writes"] for x in j)
                sent = sum(x["requests"] + x["warmup"] for x in e[mode][workload]["raw"])
                server_cpu = sum(x.get("server_cpu_s", 0) for x in j) * 1000 / sent
                database_cpu = sum(x.get("database_cpu_s", 0) for x in j) * 1000 / sent
                out.append(row(backend, name, mode, fmt(md["throughput_rps"], 0), fmt(md["p50_ms"], 2),
                               fmt(md["p90_ms"], 2), fmt(md["p99_ms"], 2), fmt(md["max_ms"], 1),
                               f"{md['throughput_rps'] / base:.2f}x", fmt(server_cpu, 3),
                               fmt(database_cpu, 3) if backend == "postgres" else "(in the server)",
                               fmt(commits / sent, 2), fmt(writes / max(1, commits), 2), md["errors"]))
    return out + [""]


def chart(r: dict, out_dir: pathlib.Path) -> None:
    w = r.get("w3w4")
    if not w or not BENCH.exists():
        return
    series = []
    for backend in ("sqlite", "postgres"):
        for scheme in ("digest", "bearer"):
            for pct in ("p50", "p99"):
                pts = [(int(k.rsplit("-", 1)[1]), e[scheme]["median"][f"{pct}_ms"])
                       for k, e in w.items() if k.startswith(backend + "-")]
                if pts:
                    series.append(f"{backend} {scheme} {pct}=" + ",".join(f"{x}:{y:.3f}" for x, y in sorted(pts)))
    if not series:
        return
    args = [str(BENCH), "chart", "--out", str(out_dir / "w4-growth.svg"),
            "--title", "W4: list latency vs stored certificates (page of 100, c=32)",
            "--x-label", "certificates in the store", "--y-label", "latency (ms)", "--log-x"]
    for s in series:
        args += ["--series", s]
    subprocess.run(args, check=True)


def main() -> int:
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "bench"
    r = json.loads((out_dir / "results.json").read_text())
    m = r["machine"]
    lines = [f"Measured {r['date']} on {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, "
             f"Linux {m['kernel']}. Medians of the runs in results.json.", ""]
    lines += w1_table(r) + w2_table(r) + w3_table(r) + storage_table(r) + replay_table(r)
    (out_dir / "tables.md").write_text("\n".join(lines) + "\n")
    chart(r, out_dir)
    print((out_dir / "tables.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
