#!/usr/bin/env python3
"""The dbcerts benchmarks (docs/BENCHMARKS.md): W1-W4 against cfssl, nginx and the hardware.

Starts every server itself on 127.0.0.1 (dbcerts from target/release, `cfssl serve` with a
throw-away CA, nginx with a throw-away config), drives them with `dbcerts-bench load` (one core
for the load generator, the other for the server under test), and writes every run's result to
docs/bench/results.json, the W4 chart to docs/bench/w4-growth.svg and the tables to
docs/bench/tables.md. Each figure is the median of `--runs` runs.

Run it through scripts/bench, which installs nginx, cfssl and PostgreSQL and builds the release
binaries; PostgreSQL workloads need DBCERTS_TEST_POSTGRES_URL (scripts/bench starts a cluster).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

import requests
from requests.auth import HTTPDigestAuth

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "blackbox"))
import pg_cluster  # noqa: E402

DBCERTS = ROOT / "target" / "release" / "dbcerts"
BENCH = ROOT / "target" / "release" / "dbcerts-bench"
V2 = "application/vnd.atlas.2023-01-01+json"
SA_V = "application/vnd.atlas.2024-08-05+json"
# Atlas's per-minute rate limits would cap every workload at 20 requests a second; the limiter
# still runs on every request, only its figures are raised.
CONFIG = ROOT / "bench" / "dbcerts-bench.toml"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Waits until something accepts connections on `port`."""
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def wait_for_http(port: int, timeout: float = 30.0) -> float:
    """Seconds until something on `port` answers an HTTP request (any status)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /api/atlas/v2 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/1.1 "):
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"nothing answered on port {port} within {timeout} s")


class Dbcerts:
    """A `dbcerts serve` on a loopback port, its bootstrap key and a service-account token."""

    def __init__(self, data_dir: pathlib.Path, key_algorithm: str, database_url: str | None = None,
                 *extra: str) -> None:
        self.data_dir = data_dir
        self.key_algorithm = key_algorithm
        self.database_url = database_url
        self.extra = extra
        self.config = CONFIG
        self.proc: subprocess.Popen | None = None

    def args(self, port: int) -> list[str]:
        a = [str(DBCERTS), "serve", "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{port}",
             "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
             "--config", str(self.config), "--key-algorithm", self.key_algorithm, *self.extra]
        if self.database_url:
            a += ["--database-url", self.database_url]
        return a

    def start(self) -> float:
        """Starts the server; returns the seconds from spawn to its first answered request."""
        # serve refuses a data directory that others can enter.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.port = free_port()
        self.metrics_port = free_port()
        self.log = open(self.data_dir / "server.log", "ab")
        started = time.perf_counter()
        self.proc = subprocess.Popen(self.args(self.port), stdout=subprocess.DEVNULL, stderr=self.log)
        wait_for_http(self.port)
        elapsed = time.perf_counter() - started
        self.root = f"http://127.0.0.1:{self.port}"
        creds = json.loads((self.data_dir / "bootstrap-credentials.json").read_text())
        self.org_id, self.public_key, self.private_key = creds["orgId"], creds["publicKey"], creds["privateKey"]
        self.session = requests.Session()
        self.session.auth = HTTPDigestAuth(self.public_key, self.private_key)
        return elapsed

    def stop(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
            self.log.close()
            self.proc = None

    def call(self, method: str, path: str, accept: str = V2, **kw) -> requests.Response:
        r = self.session.request(method, f"{self.root}/api/atlas/v2{path}", headers={"Accept": accept},
                                 timeout=120, **kw)
        r.raise_for_status()
        return r

    def project_with_user(self, username: str) -> str:
        group = self.call("POST", "/groups", json={"name": f"bench-{username}-{time.time_ns()}",
                                                   "orgId": self.org_id}).json()["id"]
        self.call("POST", f"/groups/{group}/databaseUsers", json={
            "databaseName": "$external", "username": username, "x509Type": "MANAGED", "groupId": group,
            "roles": [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}]})
        return group

    def token(self) -> str:
        sa = self.call("POST", f"/orgs/{self.org_id}/serviceAccounts", accept=SA_V, json={
            "name": f"bench-{time.time_ns()}", "description": "benchmark", "roles": ["ORG_OWNER"],
            "secretExpiresAfterHours": 8}).json()
        r = requests.post(f"{self.root}/api/oauth/token", auth=(sa["clientId"], sa["secrets"][0]["secret"]),
                          data={"grant_type": "client_credentials"}, timeout=30)
        r.raise_for_status()
        return r.json()["access_token"]

    def metric(self, name: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=30).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def wait_pool_full(self, size: int, timeout: float = 300.0) -> None:
        deadline = time.time() + timeout
        while self.metric("dbcerts_key_pool_keys") < size:
            if time.time() > deadline:
                raise RuntimeError("the key pool did not fill")
            time.sleep(0.5)


def load(target: str, url: str, *, method: str = "GET", concurrency: int, requests_: int, warmup: int,
         auth: list[str] | None = None, body: str | None = None, pid: int | None = None,
         expect_body: pathlib.Path | None = None, label: str = "") -> dict:
    """One `dbcerts-bench load` run; returns its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        a = [str(BENCH), "load", "--target", target, "--url", url, "--method", method,
             "--concurrency", str(concurrency), "--requests", str(requests_), "--warmup", str(warmup),
             "--out", out.name, "--label", label or target]
        if target == "dbcerts":
            a += ["--header", f"Accept: {V2}"]
        if body is not None:
            a += ["--body", body, "--header", "Content-Type: application/json"]
        if pid:
            a += ["--server-pid", str(pid)]
        if expect_body:
            a += ["--expect-body-file", str(expect_body)]
        a += auth or []
        env = dict(os.environ)
        proc = subprocess.run(a, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"dbcerts-bench failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
        log("  " + proc.stdout.strip().splitlines()[-1])
        return json.loads(pathlib.Path(out.name).read_text())


def median_of(runs: list[dict]) -> dict:
    """Median throughput, latency percentiles and peak RSS of several runs of one configuration."""
    med = lambda xs: statistics.median(xs)  # noqa: E731
    out = {
        "runs": len(runs),
        "throughput_rps": med([r["throughput_rps"] for r in runs]),
        "p50_ms": med([r["latency_ms"]["p50"] for r in runs]),
        "p90_ms": med([r["latency_ms"]["p90"] for r in runs]),
        "p99_ms": med([r["latency_ms"]["p99"] for r in runs]),
        "max_ms": med([r["latency_ms"]["max"] for r in runs]),
        "errors": sum(r["errors"] for r in runs),
    }
    rss = [r["server_rss_kib"]["peak"] for r in runs if r.get("server_rss_kib")]
    if rss:
        out["peak_rss_mib"] = max(rss) / 1024
    return out


def digest(server: Dbcerts) -> list[str]:
    return ["--auth", "digest", "--user", server.public_key, "--password", server.private_key]


def bearer(token: str) -> list[str]:
    return ["--auth", "bearer", "--token", token]


# ---------------------------------------------------------------------------------------------
# Peers


class Cfssl:
    """`cfssl serve` with a throw-away CA of `algo` ("ecdsa" 256 or "rsa" 2048)."""

    def __init__(self, work: pathlib.Path, algo: str, size: int) -> None:
        work.mkdir(parents=True, exist_ok=True)
        (work / "ca-csr.json").write_text(json.dumps({"CN": "bench CA", "key": {"algo": algo, "size": size}}))
        ca = json.loads(subprocess.run(["cfssl", "gencert", "-initca", str(work / "ca-csr.json")],
                                       check=True, capture_output=True, text=True).stdout)
        (work / "ca.pem").write_text(ca["cert"])
        (work / "ca-key.pem").write_text(ca["key"])
        (work / "ca-key.pem").chmod(0o600)
        self.port = free_port()
        self.log = open(work / "cfssl.log", "ab")
        self.proc = subprocess.Popen(["cfssl", "serve", "-address", "127.0.0.1", "-port", str(self.port),
                                      "-ca", str(work / "ca.pem"), "-ca-key", str(work / "ca-key.pem")],
                                     stdout=self.log, stderr=self.log)
        wait_for_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}/api/v1/cfssl/newcert"
        self.body = json.dumps({"request": {"CN": "bench-user", "key": {"algo": algo, "size": size}}})

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class Nginx:
    """nginx (Debian's, default worker count: one per core) serving one directory."""

    def __init__(self, work: pathlib.Path, root: pathlib.Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        # nginx's workers drop to an unprivileged user: the served tree must be world-readable.
        for p in (root, *root.parents):
            if p == pathlib.Path(tempfile.gettempdir()) or p == p.parent:
                break
            p.chmod(p.stat().st_mode | 0o005)
        for f in root.iterdir():
            f.chmod(0o644)
        self.port = free_port()
        conf = work / "nginx.conf"
        conf.write_text(f"""
worker_processes auto;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/json;
    client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp; fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
    server {{ listen 127.0.0.1:{self.port}; root {root}; }}
}}
""")
        (work / "tmp").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)])
        wait_for_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# ---------------------------------------------------------------------------------------------
# Workloads


def sqlite_bytes(data_dir: pathlib.Path) -> tuple[int, int]:
    """(file size, certificates) of a stopped server's SQLite database (WAL folded in at close)."""
    db = data_dir / "dbcerts.db"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        n = c.execute("SELECT COUNT(*) FROM certificates").fetchone()[0]
    return db.stat().st_size, n


def storage_baseline(server: Dbcerts) -> tuple[int, int] | None:
    """On SQLite, restarts the server around a measurement of its database: (bytes, certificates)."""
    if server.database_url:
        return None
    server.stop()
    baseline = sqlite_bytes(server.data_dir)
    server.start()
    return baseline


def record_storage(results: dict, algorithm: str, server: Dbcerts, baseline: tuple[int, int] | None) -> None:
    """Bytes the stopped server's SQLite file grew by, per certificate issued since `baseline`."""
    if baseline is None:
        return
    size, certs = sqlite_bytes(server.data_dir)
    grown, issued = size - baseline[0], certs - baseline[1]
    results.setdefault("storage", {})[algorithm] = {
        "bytes": grown, "certificates": issued, "bytes_per_certificate": grown / issued}


def w1(args, work: pathlib.Path, backends: list[str], results: dict) -> None:
    """ECDSA P-256 issuance at concurrency 8 and 32, durable, vs cfssl (P-256 and RSA-2048)."""
    out = results.setdefault("w1", {})
    n, warm = args.w1_requests, 200
    for backend in backends:
        server = Dbcerts(work / f"w1-{backend}", "ecdsa-p256", database_for(backend, "w1"))
        server.start()
        group = server.project_with_user("w1user")
        baseline = storage_baseline(server)
        url = f"{server.root}/api/atlas/v2/groups/{group}/databaseUsers/w1user/certs"
        for c in (8, 32):
            log(f"W1 dbcerts {backend} P-256 c={c}")
            runs = [load("dbcerts", url, method="POST", body='{"monthsUntilExpiration":3}', concurrency=c,
                         requests_=n, warmup=warm, auth=digest(server), pid=server.proc.pid,
                         label=f"w1-dbcerts-{backend}-c{c}") for _ in range(args.runs)]
            out[f"dbcerts-{backend}-c{c}"] = {"median": median_of(runs), "raw": runs}
        commits, writes = server.metric("dbcerts_journal_commits_total"), server.metric("dbcerts_journal_writes_total")
        out[f"dbcerts-{backend}-journal"] = {"commits": commits, "writes": writes,
                                             "mean_batch": writes / commits if commits else 0}
        server.stop()
        record_storage(results, "ecdsa-p256", server, baseline)
    for algo, size in (("ecdsa", 256), ("rsa", 2048)):
        peer = Cfssl(work / f"cfssl-{algo}", algo, size)
        body = peer.body
        for c in (8, 32):
            count = n if algo == "ecdsa" else max(200, n // 20)
            log(f"W1 cfssl {algo}-{size} c={c}")
            runs = [load("cfssl", peer.url, method="POST", body=body, concurrency=c, requests_=count,
                         warmup=min(warm, count // 4), pid=peer.proc.pid, label=f"w1-cfssl-{algo}{size}-c{c}")
                    for _ in range(args.runs)]
            out[f"cfssl-{algo}{size}-c{c}"] = {"median": median_of(runs), "raw": runs}
        peer.stop()


def w2(args, work: pathlib.Path, backends: list[str], results: dict) -> None:
    """RSA-4096: latency from the pool, sustained rate once drained, raw keygen rate, and list
    latency while the pool refills."""
    out = results.setdefault("w2", {})
    pool = 32
    for backend in backends:
        server = Dbcerts(work / f"w2-{backend}", "rsa-4096", database_for(backend, "w2"),
                         "--key-pool-size", str(pool))
        server.start()
        group = server.project_with_user("w2user")
        baseline = storage_baseline(server)
        token = server.token()
        url = f"{server.root}/api/atlas/v2/groups/{group}/databaseUsers/w2user/certs"
        post = dict(method="POST", body='{"monthsUntilExpiration":3}', auth=digest(server), pid=server.proc.pid)
        pooled, sustained, keygen, refill = [], [], [], []
        for run in range(args.runs):
            server.wait_pool_full(pool)
            log(f"W2 raw RSA-4096 keygen, 2 threads (run {run + 1})")
            keygen.append(keygen_rate(work, "rsa-4096", 2, args.w2_keys))
            server.wait_pool_full(pool)
            log(f"W2 dbcerts {backend} POST from the pool, c=1 (run {run + 1})")
            pooled.append(load("dbcerts", url, concurrency=1, requests_=pool // 2, warmup=1,
                               label=f"w2-pooled-{backend}", **post))
            log(f"W2 dbcerts {backend} sustained after draining the pool, c=4 (run {run + 1})")
            sustained.append(load("dbcerts", url, concurrency=4, requests_=args.w2_keys, warmup=pool,
                                  label=f"w2-sustained-{backend}", **post))
            log(f"W2 dbcerts {backend} list while the pool refills, c=8 (run {run + 1})")
            depth_before = server.metric("dbcerts_key_pool_keys")
            refill.append(load("dbcerts", url, concurrency=8, requests_=args.w2_list_requests, warmup=100,
                               auth=bearer(token), pid=server.proc.pid, label=f"w2-list-during-refill-{backend}"))
            refill[-1]["pool_depth"] = [depth_before, server.metric("dbcerts_key_pool_keys")]
        out[backend] = {
            "pooled": {"median": median_of(pooled), "raw": pooled},
            "sustained": {"median": median_of(sustained), "raw": sustained},
            "keygen": {"median_keys_per_second": statistics.median(k["keys_per_second"] for k in keygen),
                       "raw": keygen},
            "list_during_refill": {"median": median_of(refill), "raw": refill},
        }
        server.stop()
        record_storage(results, "rsa-4096", server, baseline)


def keygen_rate(work: pathlib.Path, algorithm: str, threads: int, keys: int) -> dict:
    out = work / "keygen.json"
    proc = subprocess.run([str(BENCH), "keygen", "--algorithm", algorithm, "--threads", str(threads),
                           "--keys", str(keys), "--out", str(out)], capture_output=True, text=True, check=True)
    log("  " + proc.stdout.strip())
    return json.loads(out.read_text())


def seed(server: Dbcerts, total: int) -> dict:
    a = [str(BENCH), "seed", "--data-dir", str(server.data_dir), "--key-algorithm", server.key_algorithm,
         "--certificates", str(total)]
    if server.database_url:
        a += ["--database-url", server.database_url]
    proc = subprocess.run(a, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"seed failed: {proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def w3w4(args, work: pathlib.Path, backends: list[str], results: dict) -> None:
    """Listing a page of 100 of a user with 10,000 certificates, with 10k, 100k and 1M stored
    (Digest and Bearer, concurrency 32), against nginx serving the same bytes; RSS and startup
    time on the largest store."""
    out = results.setdefault("w3w4", {})
    sizes = [int(s) for s in args.w4_sizes.split(",")]
    for backend in backends:
        server = Dbcerts(work / f"w3-{backend}", "ecdsa-p256", database_for(backend, "w3"))
        server.start()
        server.stop()
        for size in sizes:
            log(f"W4 seeding {backend} to {size} certificates")
            t = time.perf_counter()
            seeded = seed(server, size)
            seeded["wall_seconds"] = time.perf_counter() - t
            if server.database_url:
                # What autovacuum would soon do after a bulk load: fresh planner statistics.
                pg_cluster.query(server.database_url, "ANALYZE")
            log(f"  seeded: {seeded}")
            startups = []
            for _ in range(args.startups if size == sizes[-1] else 1):
                startups.append(server.start())
                server.stop()
            server.start()
            token = server.token()
            url = (f"{server.root}/api/atlas/v2/groups/{seeded['hot_project']}/databaseUsers/"
                   f"{seeded['hot_user']}/certs?itemsPerPage=100&pageNum=1")
            page = requests.get(url, headers={"Accept": V2, "Authorization": f"Bearer {token}"}, timeout=60)
            page.raise_for_status()
            assert page.json()["totalCount"] >= 10_000, page.json()["totalCount"]
            www = work / f"www-{backend}-{size}"
            www.mkdir(exist_ok=True)
            (www / "page.json").write_bytes(page.content)
            entry = {"seed": seeded, "startup_seconds": startups, "page_bytes": len(page.content)}
            for scheme, auth in (("digest", digest(server)), ("bearer", bearer(token))):
                log(f"W3 dbcerts {backend} {size} {scheme} c=32")
                runs = [load("dbcerts", url, concurrency=32, requests_=args.w3_requests, warmup=500, auth=auth,
                             pid=server.proc.pid, expect_body=www / "page.json",
                             label=f"w3-{backend}-{size}-{scheme}") for _ in range(args.runs)]
                entry[scheme] = {"median": median_of(runs), "raw": runs}
            server.stop()
            peer = Nginx(work / f"nginx-{backend}-{size}", www)
            log(f"W3 nginx, same bytes ({len(page.content)} B) c=32")
            runs = [load("nginx-static", f"http://127.0.0.1:{peer.port}/page.json", concurrency=32,
                         requests_=max(args.w3_requests * 10, 100_000), warmup=2000, pid=peer.proc.pid,
                         expect_body=www / "page.json", label=f"w3-nginx-{size}") for _ in range(args.runs)]
            entry["nginx"] = {"median": median_of(runs), "raw": runs}
            peer.stop()
            out[f"{backend}-{size}"] = entry
            save(results, args)


def replay(args, work: pathlib.Path, backends: list[str], results: dict) -> None:
    """What `digest-replay-check = "store"` costs (docs/ARCHITECTURE.md, "Running several
    nodes"): one Digest nonce-count write per request, in the node's group commit. W3's page (a
    user with 10,000 certificates, 10,000 stored) with Digest at concurrency 32, and W1's P-256
    issuance with Digest at concurrency 8, with "node" (the default) and with "store", on the
    same data; the two modes take turns, run by run, so that both meet the same store and the
    same machine."""
    out = results.setdefault("replay", {})
    out["machine"], out["date"] = machine(), time.strftime("%Y-%m-%d")
    store_config = work / "dbcerts-bench-store.toml"
    store_config.write_text(CONFIG.read_text() + '\ndigest-replay-check = "store"\n')
    for backend in backends:
        server = Dbcerts(work / f"replay-{backend}", "ecdsa-p256", database_for(backend, "replay"))
        server.start()
        server.stop()
        log(f"replay: seeding {backend} to 10,000 certificates")
        seeded = seed(server, 10_000)
        if server.database_url:
            pg_cluster.query(server.database_url, "ANALYZE")
        runs: dict[str, dict[str, list]] = {
            m: {"list": [], "issue": [], "list-journal": [], "issue-journal": []} for m in ("node", "store")}
        postmaster = postmaster_pid(server.database_url) if server.database_url else None

        def meter() -> dict:
            """Journal counters, and CPU seconds of the server and of the database cluster:
            throughput on a shared machine moves with the neighbours' load, CPU per request
            much less."""
            return {"commits": server.metric("dbcerts_journal_commits_total"),
                    "writes": server.metric("dbcerts_journal_writes_total"),
                    "server_cpu_s": process_cpu_seconds(server.proc.pid),
                    "database_cpu_s": cluster_cpu_seconds(postmaster) if postmaster else 0.0}

        def since(before: dict) -> dict:
            after = meter()
            return {k: after[k] - before[k] for k in after}

        group = None
        for i in range(args.runs):
            for mode in ("node", "store") if i % 2 == 0 else ("store", "node"):
                server.config = CONFIG if mode == "node" else store_config
                server.start()
                if group is None:
                    group = server.project_with_user("replayuser")
                page_url = (f"{server.root}/api/atlas/v2/groups/{seeded['hot_project']}/databaseUsers/"
                            f"{seeded['hot_user']}/certs?itemsPerPage=100&pageNum=1")
                page = work / f"replay-page-{backend}.json"
                page.write_bytes(server.session.get(page_url, headers={"Accept": V2}, timeout=60).content)
                before = meter()
                log(f"replay {backend} {mode}: list c=32, run {i + 1}")
                runs[mode]["list"].append(load(
                    "dbcerts", page_url, concurrency=32, requests_=args.w3_requests, warmup=500,
                    auth=digest(server), pid=server.proc.pid, expect_body=page,
                    label=f"replay-{backend}-{mode}-list"))
                runs[mode]["list-journal"].append(since(before))
                before = meter()
                log(f"replay {backend} {mode}: P-256 issuance c=8, run {i + 1}")
                url = f"{server.root}/api/atlas/v2/groups/{group}/databaseUsers/replayuser/certs"
                runs[mode]["issue"].append(load(
                    "dbcerts", url, method="POST", body='{"monthsUntilExpiration":3}', concurrency=8,
                    requests_=args.w1_requests, warmup=200, auth=digest(server), pid=server.proc.pid,
                    label=f"replay-{backend}-{mode}-issue"))
                runs[mode]["issue-journal"].append(since(before))
                server.stop()
        out[backend] = {mode: {w: {"median": median_of(r[w]), "raw": r[w], "journal": r[f"{w}-journal"]}
                               for w in ("list", "issue")}
                        for mode, r in runs.items()}
        save(results, args)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads)."""
    return _proc_stat(pid)[1] / os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int | str) -> tuple[int, int, int]:
    """(parent pid, own CPU ticks, CPU ticks of its reaped children) from /proc/<pid>/stat."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def postmaster_pid(database_url: str) -> int:
    """The PostgreSQL server process of the cluster holding `database_url` (this machine's)."""
    [(data_dir,)] = pg_cluster.query(database_url, "SELECT setting FROM pg_settings WHERE name = 'data_directory'")
    return int((pathlib.Path(data_dir) / "postmaster.pid").read_text().split()[0])


def cluster_cpu_seconds(postmaster: int) -> float:
    """CPU seconds of a PostgreSQL cluster: the postmaster and every process it started, living
    (their own time) or gone (their time, accounted to the postmaster when reaped)."""
    _, own, reaped = _proc_stat(postmaster)
    ticks = own + reaped
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid, own, reaped = _proc_stat(entry.name)
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == postmaster:
            ticks += own + reaped
    return ticks / os.sysconf("SC_CLK_TCK")


def database_for(backend: str, name: str) -> str | None:
    if backend != "postgres":
        return None
    admin = os.environ["DBCERTS_TEST_POSTGRES_URL"]
    return pg_cluster.create_database(admin, f"bench_{name}_{time.time_ns() % 10**9}")


def save(results: dict, args) -> None:
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workloads", nargs="*", default=["w1", "w2", "w3"],
                   help="w1 w2 w3 (w3 includes w4); replay (the cost of digest-replay-check = \"store\")")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--w1-requests", type=int, default=4000)
    p.add_argument("--w2-keys", type=int, default=128)
    p.add_argument("--w2-list-requests", type=int, default=2000)
    p.add_argument("--w3-requests", type=int, default=10000)
    p.add_argument("--w4-sizes", default="10000,100000,1000000")
    p.add_argument("--startups", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "docs" / "bench"))
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    if "postgres" in backends and not os.environ.get("DBCERTS_TEST_POSTGRES_URL"):
        log("no DBCERTS_TEST_POSTGRES_URL: SQLite only")
        backends = [b for b in backends if b != "postgres"]
    peers = {"w1": ("cfssl",), "w3": ("nginx",)}
    for tool in sorted({t for w in args.workloads for t in peers.get(w, ())}):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed; run scripts/bench")
    results_path = pathlib.Path(args.out) / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if {"w1", "w2", "w3"} & set(args.workloads):
        # The replay workload records its own machine and date.
        results["machine"] = machine()
        results["date"] = time.strftime("%Y-%m-%d")
    work = pathlib.Path(tempfile.mkdtemp(prefix="dbcerts-bench-", dir=os.environ.get("DBCERTS_BENCH_DIR")))
    log(f"work directory {work}")
    try:
        for w, fn in (("w1", w1), ("w2", w2), ("w3", w3w4), ("replay", replay)):
            if w in args.workloads:
                fn(args, work, backends, results)
                save(results, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    subprocess.run([sys.executable, str(ROOT / "bench" / "report.py"), args.out], check=True)
    return 0


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), "unknown")
    return {"cpu_model": model, "cores": os.cpu_count(), "kernel": os.uname().release,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


if __name__ == "__main__":
    sys.exit(main())
