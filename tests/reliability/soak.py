#!/usr/bin/env python3
"""Soak test: a real `dbcerts serve` under mixed load, its memory and file descriptors sampled.

    .venv/bin/python tests/reliability/soak.py [--duration 900] [--concurrency 8]
        [--bin target/release/dbcerts] [--backend sqlite|postgres] [--report FILE]

Starts the binary (`--bin`, else `DBCERTS_BIN`, else `target/release/dbcerts`, built if missing)
on a fresh data directory, on SQLite or, with `--backend postgres`, on a new database of the
cluster `DBCERTS_TEST_POSTGRES_URL` names. The server issues ECDSA P-256 keys
(`--key-algorithm ecdsa-p256`): with the default RSA-4096 every certificate costs a key
generation of a second or more on a small machine, so the soak would measure only the key pool
(and mostly wait on it) instead of the request path, the store and the allocator. The rate
limits and the failed-authentication throttling are lifted as for the black-box suite's shared
servers (`conftest.UNTHROTTLED`): the soak sends thousands of requests a minute from one address.

`--concurrency` workers (default 8) send requests back to back for `--duration` seconds; even
workers authenticate with HTTP Digest (the bootstrap API key), odd ones with a Bearer token of
an Organization Owner service account (renewed before it expires). The mix, per worker: list
projects (various pages), get its project, list a reference user's certificates (various page
sizes and pages, on projects set up with 120 certificates each), create certificates, create,
get, patch and delete MANAGED database users, list database users, get and patch user security
(customer CA set and cleared, LDAP settings) and disable the customer CA, on a project of its
own; every 250 operations a worker moves to a new project and deletes the old one (createGroup,
deleteGroup), which also keeps the data set bounded. Workers never touch each other's
resources, so no request has a reason to fail: every status other than the operation's
documented success (`EXPECTED`) is a failure, and so is a request without a response. No 4xx
is expected (`DOCUMENTED_4XX` is empty); a Digest stale-nonce challenge is retried by the client
and counted apart.

Every `--sample-interval` seconds (10) the server's RSS (`VmRSS` in /proc/PID/status), its peak
(`VmHWM`), open file descriptors and threads are sampled. Verdict: RSS must not grow once warm.
The warm figure is the median of the samples within 20 s of the 2-minute mark (`--warm-at`),
the end figure the median of the last five samples (single samples are noisy: allocator
arenas, a compaction, a burst of large pages); the run fails if end > 1.10 × warm. The check
needs a run of at least twice `--warm-at`; shorter runs report the figures without a verdict.
Also failing: any unexpected status or connection error, and a server that does not exit 0 on
SIGTERM. The JSON report (`--report`) holds the samples, counts per operation and status, and
latency p50/p99/max per operation.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import pathlib
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import requests
from requests.auth import HTTPDigestAuth

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "blackbox"))

import conftest  # noqa: E402  (the black-box helpers: Server, UNTHROTTLED, service accounts)
from _certs_util import make_cert  # noqa: E402  (a self-signed CA for customerX509.cas)
import pg_cluster  # noqa: E402

V2 = conftest.V2
EXTERNAL = "$external"
LISTED_CERTS = 120  # certificates of each reference user, so that the list has many pages
LISTING_PROJECTS = 2
ROTATE_EVERY = 250  # operations per worker between project moves
MAX_LIVE_USERS = 4  # per worker project
ROLES = [
    {"databaseName": "admin", "roleName": "readWriteAnyDatabase"},
    {"databaseName": "admin", "roleName": "readAnyDatabase"},
    {"databaseName": "sales", "roleName": "read"},
    {"databaseName": "sales", "roleName": "readWrite"},
]

# The success each operation documents (docs/COMPATIBILITY.md, Operations).
EXPECTED = {
    "listGroups": 200,
    "getGroup": 200,
    "createGroup": 201,
    "deleteGroup": 202,
    "listDatabaseUserCerts": 200,
    "createDatabaseUserCert": 201,
    "listDatabaseUsers": 200,
    "createDatabaseUser": 201,
    "getDatabaseUser": 200,
    "updateDatabaseUser": 200,
    "deleteDatabaseUser": 204,
    "getUserSecurity": 200,
    "updateUserSecurity": 202,
    "disableCustomerX509": 202,
}
# 4xx answers the mix may legitimately get, as (operation, status, errorCode). None: every
# worker works on resources of its own, creates only names it has never used, keeps at most
# MAX_LIVE_USERS users per project (the limit is 100) and never sets a customer CA on a project
# it issues certificates in, and the rate limits are lifted.
DOCUMENTED_4XX: frozenset[tuple[str, int, str]] = frozenset()

WEIGHTS = {
    "listGroups": 8,
    "getGroup": 4,
    "listDatabaseUserCerts": 18,
    "createDatabaseUserCert": 12,
    "listDatabaseUsers": 6,
    "createDatabaseUser": 8,
    "getDatabaseUser": 6,
    "updateDatabaseUser": 8,
    "deleteDatabaseUser": 5,
    "getUserSecurity": 6,
    "updateUserSecurity": 6,
    "disableCustomerX509": 2,
}


class BearerToken(requests.auth.AuthBase):
    """`Authorization: Bearer`, renewed five minutes before `expires_in` runs out."""

    def __init__(self, root: str, client_id: str, secret: str) -> None:
        self.url = f"{root}/api/oauth/token"
        self.client = (client_id, secret)
        self.token: str | None = None
        self.renew_at = 0.0
        self.issued = 0

    def current(self) -> str:
        if self.token is None or time.monotonic() >= self.renew_at:
            r = requests.post(
                self.url, auth=self.client, data={"grant_type": "client_credentials"},
                headers={"Accept": "application/json"}, timeout=30,
            )
            if r.status_code != 200:
                raise RuntimeError(f"token request answered {r.status_code}: {r.text[:300]}")
            body = r.json()
            self.token = conftest.remember_secret(body["access_token"])
            self.renew_at = time.monotonic() + body["expires_in"] - min(300, body["expires_in"] / 2)
            self.issued += 1
        return self.token

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self.current()}"
        return r


class Results:
    """Everything the workers observed; one lock, held only to record."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.by_auth: collections.Counter = collections.Counter()
        self.unexpected: list[dict] = []
        self.unexpected_count = 0
        self.documented_4xx: collections.Counter = collections.Counter()
        self.digest_challenges = 0
        self.requests = 0

    def record(self, op: str, auth: str, status: int | None, seconds: float, *, challenges: int = 0,
               detail: dict | None = None) -> None:
        with self.lock:
            self.requests += 1
            self.by_auth[auth] += 1
            self.status[op][status if status is not None else "no response"] += 1
            self.latency[op].append(seconds)
            self.digest_challenges += challenges
            if detail is not None:
                self.unexpected_count += 1
                if len(self.unexpected) < 50:  # the first 50 in full; all of them are counted
                    self.unexpected.append(detail)

    def problem(self, detail: dict) -> None:
        """A wrong answer behind an expected status (content checks), or a server gone."""
        with self.lock:
            self.unexpected_count += 1
            if len(self.unexpected) < 50:
                self.unexpected.append(detail)

    def counted_4xx(self, key: tuple[str, int, str]) -> None:
        with self.lock:
            self.documented_4xx["/".join(map(str, key))] += 1


class Unexpected(Exception):
    pass


class Worker(threading.Thread):
    def __init__(self, index: int, load: "Load") -> None:
        super().__init__(name=f"soak-worker-{index}", daemon=True)
        self.index = index
        self.load = load
        self.random = random.Random(index)
        self.session = requests.Session()
        if index % 2 == 0:
            self.auth_mode = "digest"
            self.session.auth = HTTPDigestAuth(load.server.public_key, load.server.private_key)
        else:
            self.auth_mode = "bearer"
            self.session.auth = BearerToken(load.server.root, *load.service_account)
        self.names = (f"w{index}u{n}" for n in range(10**9))
        self.users: list[str] = []  # live users of the worker's current project, oldest first
        self.gid = ""
        self.security_gid = ""
        self.ops = 0
        self.ca = load.customer_ca
        self.failure: BaseException | None = None

    # ---- one request ----
    def call(self, op: str, method: str, path: str, **kw) -> requests.Response | None:
        headers = {"Accept": V2, **kw.pop("headers", {})}
        url = f"{self.load.server.root}/api/atlas/v2{path}"
        start = time.perf_counter()
        try:
            r = self.session.request(method, url, headers=headers, timeout=60, **kw)
        except requests.RequestException as exc:
            self.load.results.record(
                op, self.auth_mode, None, time.perf_counter() - start,
                detail={"op": op, "method": method, "path": path, "error": f"{type(exc).__name__}: {exc}"},
            )
            return None
        seconds = time.perf_counter() - start
        challenges = sum(1 for h in r.history if h.status_code == 401)
        detail = None
        if r.status_code != EXPECTED[op]:
            code = None
            try:
                code = r.json().get("errorCode")
            except ValueError:
                pass
            key = (op, r.status_code, code)
            if key in DOCUMENTED_4XX:
                self.load.results.counted_4xx(key)
            else:
                detail = {
                    "op": op, "method": method, "path": path, "request": kw.get("json"),
                    "status": r.status_code, "errorCode": code, "body": r.text[:500],
                    "auth": self.auth_mode, "at": round(time.monotonic() - self.load.started, 1),
                }
        self.load.results.record(op, self.auth_mode, r.status_code, seconds, challenges=challenges, detail=detail)
        return r if detail is None and r.status_code == EXPECTED[op] else None

    # ---- setup and project moves ----
    def new_project(self, prefix: str) -> str:
        r = self.call("createGroup", "POST", "/groups",
                      json={"name": f"{prefix}-{uuid.uuid4().hex[:12]}", "orgId": self.load.server.org_id})
        if r is None:
            raise Unexpected("createGroup failed")
        return r.json()["id"]

    def move_project(self) -> None:
        old = self.gid
        self.gid = self.new_project(f"soak-w{self.index}")
        self.users = []
        if old:
            self.call("deleteGroup", "DELETE", f"/groups/{old}")

    # ---- the operations ----
    def do_listGroups(self) -> None:
        ipp = self.random.choice([1, 5, 20, 100, 500])
        self.call("listGroups", "GET", "/groups",
                  params={"itemsPerPage": ipp, "pageNum": self.random.randint(1, 4), "includeCount": "true"})

    def do_getGroup(self) -> None:
        self.call("getGroup", "GET", f"/groups/{self.gid}")

    def do_listDatabaseUserCerts(self) -> None:
        gid = self.random.choice(self.load.listing)
        ipp = self.random.choice([1, 10, 50, 100, 500])
        last = -(-LISTED_CERTS // ipp)
        page = self.random.randint(1, last + 1)  # one page past the end: 200 with no results
        r = self.call("listDatabaseUserCerts", "GET", f"/groups/{gid}/databaseUsers/lister/certs",
                      params={"itemsPerPage": ipp, "pageNum": page})
        if r is not None:
            body = r.json()
            want = max(0, min(ipp, LISTED_CERTS - (page - 1) * ipp))
            if body.get("totalCount") != LISTED_CERTS or len(body.get("results", [])) != want:
                self.load.results.problem(
                    {"op": "listDatabaseUserCerts", "path": r.request.url, "status": r.status_code,
                     "problem": f"totalCount {body.get('totalCount')}, {len(body.get('results', []))} "
                                f"results; expected {LISTED_CERTS} and {want}"}
                )

    def do_createDatabaseUser(self) -> None:
        if len(self.users) >= MAX_LIVE_USERS:
            self.do_deleteDatabaseUser()
        name = next(self.names)
        body = {"databaseName": EXTERNAL, "groupId": self.gid, "username": name, "x509Type": "MANAGED",
                "roles": [self.random.choice(ROLES)]}
        if self.call("createDatabaseUser", "POST", f"/groups/{self.gid}/databaseUsers", json=body) is not None:
            self.users.append(name)

    def user(self) -> str:
        if not self.users:
            self.do_createDatabaseUser()
        return self.random.choice(self.users) if self.users else "missing"

    def do_createDatabaseUserCert(self) -> None:
        name = self.user()
        r = self.call("createDatabaseUserCert", "POST", f"/groups/{self.gid}/databaseUsers/{name}/certs",
                      json={"monthsUntilExpiration": self.random.randint(1, 24)})
        if r is not None and not r.text.startswith("-----BEGIN CERTIFICATE-----\n"):
            self.load.results.problem({"op": "createDatabaseUserCert", "status": r.status_code, "problem": r.text[:200]})

    def do_listDatabaseUsers(self) -> None:
        self.call("listDatabaseUsers", "GET", f"/groups/{self.gid}/databaseUsers",
                  params={"itemsPerPage": self.random.choice([1, 2, 100]), "pageNum": self.random.randint(1, 3)})

    def do_getDatabaseUser(self) -> None:
        self.call("getDatabaseUser", "GET", f"/groups/{self.gid}/databaseUsers/{EXTERNAL}/{self.user()}")

    def do_updateDatabaseUser(self) -> None:
        body = {
            "roles": self.random.sample(ROLES, self.random.randint(1, len(ROLES))),
            "description": f"soak {self.ops}",
            "labels": [{"key": "soak", "value": str(self.random.randint(0, 999))}],
        }
        self.call("updateDatabaseUser", "PATCH", f"/groups/{self.gid}/databaseUsers/{EXTERNAL}/{self.user()}",
                  json=body)

    def do_deleteDatabaseUser(self) -> None:
        if not self.users:
            self.do_createDatabaseUser()
        if self.users:
            name = self.users.pop(0)
            self.call("deleteDatabaseUser", "DELETE", f"/groups/{self.gid}/databaseUsers/{EXTERNAL}/{name}")

    def do_getUserSecurity(self) -> None:
        self.call("getUserSecurity", "GET", f"/groups/{self.security_gid}/userSecurity")

    def do_updateUserSecurity(self) -> None:
        choice = self.random.randrange(3)
        if choice == 0:
            body = {"customerX509": {"cas": self.ca}}
        elif choice == 1:
            body = {"customerX509": {"cas": ""}}
        else:
            body = {"ldap": {"hostname": "ldap.example.com", "port": self.random.choice([389, 636]),
                             "bindUsername": "CN=admin,DC=example,DC=org", "bindPassword": "soak-secret",
                             "authenticationEnabled": self.random.choice([True, False])}}
        self.call("updateUserSecurity", "PATCH", f"/groups/{self.security_gid}/userSecurity", json=body)

    def do_disableCustomerX509(self) -> None:
        self.call("disableCustomerX509", "DELETE", f"/groups/{self.security_gid}/userSecurity/customerX509")

    def run(self) -> None:
        try:
            self.security_gid = self.new_project(f"soak-sec-w{self.index}")
            self.move_project()
            ops = list(WEIGHTS)
            weights = [WEIGHTS[o] for o in ops]
            while not self.load.stop.is_set():
                getattr(self, f"do_{self.random.choices(ops, weights)[0]}")()
                self.ops += 1
                if self.ops % self.load.rotate_every == 0:
                    self.move_project()
        except BaseException as exc:  # a bug in the harness must not pass for a quiet server
            self.failure = exc
            self.load.stop.set()


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                fields[key] = int(value.split()[0])
    fields["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return fields


def data_dir_bytes(path: pathlib.Path) -> int:
    """The size of the server's data directory (the SQLite database, WAL, log; on PostgreSQL
    only the log): the data set grows with the audit trail, which the RSS must not follow."""
    total = 0
    for entry in os.scandir(path):
        try:
            total += entry.stat().st_size if entry.is_file() else 0
        except FileNotFoundError:
            pass
    return total


class Load:
    """Mixed load against a running `conftest.Server`."""

    def __init__(self, server: conftest.Server, *, concurrency: int = 8, sample_interval: float = 10.0,
                 rotate_every: int = ROTATE_EVERY, log=print) -> None:
        self.server = server
        self.rotate_every = rotate_every
        self.concurrency = concurrency
        self.sample_interval = sample_interval
        self.results = Results()
        self.stop = threading.Event()
        self.samples: list[dict] = []
        self.log = log
        self.started = time.monotonic()
        self.customer_ca = make_cert("soak customer CA")
        self.listing: list[str] = []
        self.service_account: tuple[str, str] = ("", "")

    def setup(self) -> None:
        """The reference data (as the bootstrap key, outside the measured requests)."""
        s = self.server
        for _ in range(LISTING_PROJECTS):
            gid = s.create_project()
            s.create_user(gid, "lister")
            for n in range(LISTED_CERTS):
                s.create_cert(gid, "lister", months=1 + n % 24)
            self.listing.append(gid)
        account = conftest.create_service_account(s, roles=("ORG_OWNER",), name=f"soak-{uuid.uuid4().hex[:8]}")
        self.service_account = (account["clientId"], account["secrets"][0]["secret"])

    def sample(self) -> dict:
        try:
            status = proc_status(self.server.proc.pid)
        except (FileNotFoundError, ProcessLookupError):
            status = None
        if status is None or self.server.proc.poll() is not None:
            self.results.problem({"problem": f"the server is gone (exit code {self.server.proc.poll()})"})
            self.stop.set()
            return {"t": round(time.monotonic() - self.started, 1), "gone": True}
        with self.results.lock:
            done, bad = self.results.requests, self.results.unexpected_count
        row = {"t": round(time.monotonic() - self.started, 1), "rss_kib": status["VmRSS"],
               "hwm_kib": status["VmHWM"], "fds": status["fds"], "threads": status["Threads"],
               "requests": done, "unexpected": bad, "data_dir_bytes": data_dir_bytes(self.server.data_dir)}
        self.samples.append(row)
        return row

    def run(self, duration: float) -> dict:
        self.setup()
        self.started = time.monotonic()
        workers = [Worker(i, self) for i in range(self.concurrency)]
        self.sample()
        for w in workers:
            w.start()
        deadline = self.started + duration
        next_sample = self.started + self.sample_interval
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_sample:
                row = self.sample()
                if row.get("gone"):
                    break
                self.log(f"  t={row['t']:6.0f}s rss={row['rss_kib'] / 1024:7.1f} MiB fds={row['fds']:3d} "
                         f"threads={row['threads']:3d} requests={row['requests']} unexpected={row['unexpected']} "
                         f"data={row['data_dir_bytes'] / 2**20:.0f} MiB")
                next_sample += self.sample_interval
            self.stop.wait(min(max(0.0, next_sample - now), max(0.0, deadline - now), 1.0))
        self.stop.set()
        for w in workers:
            w.join(timeout=120)
        elapsed = time.monotonic() - self.started
        self.sample()
        failures = [f"{w.name}: {type(w.failure).__name__}: {w.failure}" for w in workers if w.failure]
        failures += [f"{w.name} did not stop" for w in workers if w.is_alive()]
        return self.report(elapsed, failures)

    def report(self, elapsed: float, harness_failures: list[str]) -> dict:
        r = self.results
        latency = {}
        for op, values in sorted(r.latency.items()):
            values = sorted(values)
            latency[op] = {
                "n": len(values),
                "p50_ms": round(1000 * values[len(values) // 2], 2),
                "p99_ms": round(1000 * values[min(len(values) - 1, int(len(values) * 0.99))], 2),
                "max_ms": round(1000 * values[-1], 2),
            }
        return {
            "duration_s": round(elapsed, 1),
            "concurrency": self.concurrency,
            "requests": r.requests,
            "requests_per_s": round(r.requests / elapsed, 1) if elapsed else None,
            "requests_by_auth": dict(r.by_auth),
            "status_by_operation": {op: {str(k): v for k, v in c.items()} for op, c in sorted(r.status.items())},
            "latency_by_operation": latency,
            "digest_challenges_retried": r.digest_challenges,
            "documented_4xx": dict(r.documented_4xx),
            "unexpected_count": r.unexpected_count,
            "unexpected_first": r.unexpected,
            "harness_failures": harness_failures,
            "samples": self.samples,
        }


def median_around(samples: list[dict], t: float, half_width: float) -> tuple[float | None, int]:
    near = [s["rss_kib"] for s in samples if abs(s["t"] - t) <= half_width]
    return (statistics.median(near), len(near)) if near else (None, 0)


def rss_verdict(samples: list[dict], warm_at: float, limit: float = 1.10) -> dict:
    """Median RSS within 20 s of `warm_at` against the median of the last five samples."""
    end_samples = [s["rss_kib"] for s in samples[-5:]]
    warm, n_warm = median_around(samples, warm_at, 20.0)
    verdict = {
        "warm_at_s": warm_at,
        "warm_rss_kib": warm,
        "warm_samples": n_warm,
        "end_rss_kib": statistics.median(end_samples) if end_samples else None,
        "end_samples": len(end_samples),
        "max_rss_kib": max((s["rss_kib"] for s in samples), default=None),
        "max_hwm_kib": max((s["hwm_kib"] for s in samples), default=None),
        "fds": {"min": min((s["fds"] for s in samples), default=None),
                "max": max((s["fds"] for s in samples), default=None),
                "end": samples[-1]["fds"] if samples else None},
        "limit": limit,
    }
    evaluated = bool(samples) and warm is not None and samples[-1]["t"] >= 2 * warm_at
    verdict["evaluated"] = evaluated
    if evaluated:
        verdict["growth_pct"] = round(100.0 * (verdict["end_rss_kib"] / warm - 1.0), 2)
        verdict["ok"] = verdict["end_rss_kib"] <= limit * warm
    return verdict


def start_server(args, data_dir: pathlib.Path, settings: dict | None = None) -> conftest.Server:
    """`dbcerts serve` unthrottled, with `settings` (TOML keys) besides."""
    config = data_dir.parent / f"{data_dir.name}-unthrottled.toml"
    config.write_text("".join(f"{k} = {v}\n" for k, v in {**conftest.UNTHROTTLED, **(settings or {})}.items()))
    extra = ["--key-algorithm", "ecdsa-p256", "--config", str(config)]
    if args.backend == "postgres":
        admin = os.environ.get("DBCERTS_TEST_POSTGRES_URL")
        if not admin:
            sys.exit("--backend postgres needs DBCERTS_TEST_POSTGRES_URL (an admin URL of a scratch cluster)")
        extra += ["--database-url", pg_cluster.create_database(admin, f"soak_{uuid.uuid4().hex[:12]}")]
    else:
        # Explicit, so that DBCERTS_TEST_BACKEND in the environment cannot change the backend.
        extra += ["--database-url", f"sqlite://{data_dir}/dbcerts.db"]
    return conftest.Server(data_dir, *extra)


def binary(args) -> str:
    path = args.bin or os.environ.get("DBCERTS_BIN") or str(ROOT / "target" / "release" / "dbcerts")
    if not os.path.exists(path):
        if args.bin or os.environ.get("DBCERTS_BIN"):
            sys.exit(f"no binary at {path}")
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "dbcerts"], cwd=ROOT, check=True)
    return os.path.abspath(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=900.0, help="seconds of load (default 900)")
    p.add_argument("--concurrency", type=int, default=8, help="workers (default 8)")
    p.add_argument("--bin", help="the dbcerts binary (default $DBCERTS_BIN, else target/release/dbcerts)")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--sample-interval", type=float, default=10.0)
    p.add_argument("--warm-at", type=float, default=120.0, help="the warm RSS mark, seconds (default 120)")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    args = p.parse_args(argv)

    os.environ["DBCERTS_BIN"] = binary(args)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="dbcerts-soak-"))
    data = tmp / "data"
    data.mkdir(mode=0o700)  # serve refuses a data directory that others can enter
    print(f"soak: {args.duration:.0f} s, concurrency {args.concurrency}, {args.backend}, "
          f"binary {os.environ['DBCERTS_BIN']}, data {data}", flush=True)
    server = start_server(args, data)
    exit_code = None
    try:
        load = Load(server, concurrency=args.concurrency, sample_interval=args.sample_interval,
                    log=lambda line: print(line, flush=True))
        report = load.run(args.duration)
    finally:
        if server.proc.poll() is None:
            exit_code = server.stop(signal.SIGTERM)
        else:
            exit_code = server.proc.returncode
    report["backend"] = args.backend
    report["binary"] = os.environ["DBCERTS_BIN"]
    report["server_exit_code"] = exit_code
    report["cpus"] = os.cpu_count()
    report["loadavg_end"] = os.getloadavg()
    report["rss"] = rss_verdict(report["samples"], args.warm_at)
    failures = summarize(report)
    report["failures"] = failures
    if args.report:
        path = pathlib.Path(args.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report: {path}")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    else:
        print(f"data kept in {data}")
    return 1 if failures else 0


def summarize(report: dict) -> list[str]:
    """Prints the summary; returns the failures (empty: the soak passed)."""
    rss = report["rss"]
    mib = lambda kib: f"{kib / 1024:.1f} MiB" if kib is not None else "n/a"  # noqa: E731
    print(f"\nsoak summary ({report.get('backend')}, {report['duration_s']} s, concurrency {report['concurrency']}):")
    print(f"  requests: {report['requests']} ({report['requests_per_s']}/s) by auth {report['requests_by_auth']}; "
          f"Digest challenges retried: {report['digest_challenges_retried']}")
    for op, counts in report["status_by_operation"].items():
        lat = report["latency_by_operation"].get(op, {})
        print(f"    {op:32s} {counts}  p50 {lat.get('p50_ms')} ms  p99 {lat.get('p99_ms')} ms  max {lat.get('max_ms')} ms")
    print(f"  RSS: warm (median of {rss['warm_samples']} samples within 20 s of {rss['warm_at_s']:.0f} s) "
          f"{mib(rss['warm_rss_kib'])}, end (median of last {rss['end_samples']}) {mib(rss['end_rss_kib'])}, "
          f"max {mib(rss['max_rss_kib'])} (peak VmHWM {mib(rss['max_hwm_kib'])})")
    print(f"  fds: {rss['fds']}")
    failures = []
    if rss["evaluated"]:
        print(f"  RSS growth warm -> end: {rss['growth_pct']:+.2f}% (limit +{100 * (rss['limit'] - 1):.0f}%)")
        if not rss["ok"]:
            failures.append(f"RSS grew {rss['growth_pct']:+.2f}% from {rss['warm_at_s']:.0f} s to the end")
    else:
        print("  RSS growth: not evaluated (the run is shorter than twice the warm mark)")
    if report["unexpected_count"]:
        failures.append(f"{report['unexpected_count']} unexpected answers or connection errors")
        for d in report["unexpected_first"][:10]:
            print(f"    unexpected: {json.dumps(d)[:400]}")
    failures += report["harness_failures"]
    if report.get("server_exit_code") not in (0, None):
        failures.append(f"the server exited with {report['server_exit_code']} on SIGTERM")
    print("  result: " + ("FAILED: " + "; ".join(failures) if failures else "passed"))
    return failures


if __name__ == "__main__":
    sys.exit(main())
