"""Crash consistency: `kill -9` the server while it issues certificates, restart it on the same
data, and check that nothing a client was given is lost and nothing is duplicated.

One real `dbcerts serve` (`--key-algorithm ecdsa-p256`, rate limits lifted as conftest's shared
fixtures lift them) on a fresh store: a SQLite data directory or, with
`DBCERTS_TEST_BACKEND=postgres`, a fresh database on the test cluster. Eight client threads
(Python `requests`, Digest, one `Session` each) loop `POST .../databaseUsers/{user}/certs` and
keep every PEM answered with a 201. After a random delay the server process itself (checked by
its `/proc/PID/cmdline`) gets SIGKILL; the clients' in-flight requests fail (those PEMs were
never received), the server is restarted on the same data (same data directory, master key and
database URL), and then:

- `/health/ready` answers 200, and a certificate issued after the restart comes back 201;
- listing every user's certificates (`includeCount`, every page of 500) shows every certificate
  a client ever received, under its user and project, with the serial, `notAfter`, `createdAt`
  (the certificate's notBefore) and subject of the PEM the client got; no serial is listed
  twice, `totalCount` matches the items, and nothing listed before the crash has gone;
- every received certificate verifies against its project's CA, and the CA never changes;
- in the database itself: SQLite's `PRAGMA integrity_check` is `ok` and `foreign_key_check` is
  empty (on PostgreSQL, amcheck's `bt_index_check(heapallindexed)` on every index, when the
  extension is installed); no serial appears twice; the stored DER of every newly received
  certificate is byte for byte the one the client got; the table holds exactly the listed
  certificates; and the audit log has exactly one `certificate.issued` entry per certificate
  row (the entry is written in the certificate's own transaction, so a crash must take both or
  neither);
- `dbcerts audit verify` (same store flags) finds the hash chain intact.

**All kill points run in a row on one store**, not each on a fresh one: a crash then lands on a
database that has already been through every earlier crash and recovery (WAL frames left by
earlier kills, an audit chain that spans many restarts, certificates from many server
lifetimes), which is what an operator's database goes through, and each check re-examines all
history, so damage done by an early crash but noticed late still fails. Variety comes from
the kill points themselves: the delay after the load starts is spread between 0.05 s and 2 s
(about a third of them under 0.3 s); about a fifth are "cold" (the idle, verified server is
killed too, restarted, and the load starts the moment it is listening, so the kill lands among
the first requests of a new process: cold CA cache, key pool still filling, first Digest
challenges, new database connections); and about a fifth first add a new project and MANAGED
user, so the kill may land while that project's CA is being created under load.

`DBCERTS_CRASH_POINTS` sets the number of kill points (default 20; the long run uses 200) and
`DBCERTS_CRASH_SEED` the seed of the random choices (printed, with every kill point's delay, so
a failure can be replayed; the kill moment relative to the server's work is timing and never
exactly reproducible). The test runs on a hard link (or copy) of the binary, so a rebuild
during the run does not change the server between restarts.

Secrets: thousands of certificates are issued, and conftest checks every remembered secret
against every server log at the end of the session; remembering every key would make that
check quadratic, so three keys per kill point are remembered (the server never logs a key in
any code path; test_secrets_never_leak.py covers that thoroughly), and the server log, which
conftest lists once per start, is listed once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from requests.auth import HTTPDigestAuth

import conftest
from conftest import BACKEND, UNTHROTTLED, V2, Server, dbcerts_bin, remember_private_key

POINTS = int(os.environ.get("DBCERTS_CRASH_POINTS", "20"))
THREADS = 8
USERS = 3
PAGE = 500


def atlas_date(d: dt.datetime) -> str:
    return d.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Received:
    """One certificate a client got with a 201."""

    __slots__ = ("gid", "user", "serial", "not_before", "not_after", "subject", "der")

    def __init__(self, gid: str, user: str, pem: str) -> None:
        cert = x509.load_pem_x509_certificate(pem.encode())
        self.gid, self.user = gid, user
        self.serial = cert.serial_number
        self.not_before = atlas_date(cert.not_valid_before_utc)
        self.not_after = atlas_date(cert.not_valid_after_utc)
        self.subject = cert.subject.rfc4514_string()
        self.der = cert.public_bytes(Encoding.DER)


class Load:
    """THREADS client threads posting certificates until told to stop or the server dies."""

    def __init__(self, s: Server, targets: list[tuple[str, str]]) -> None:
        self.s = s
        self.targets = list(targets)
        self.stop = threading.Event()
        self.killed_at: float | None = None  # monotonic time just before SIGKILL
        self.lock = threading.Lock()
        self.received: list[tuple[str, str, str]] = []
        self.pre_kill_failures: list[str] = []  # anything but a 201 before the kill
        self.post_kill_errors = 0
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(THREADS)]

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def _before_kill(self) -> bool:
        k = self.killed_at
        return k is None or time.monotonic() < k

    def _run(self, tid: int) -> None:
        session = requests.Session()
        session.auth = HTTPDigestAuth(self.s.public_key, self.s.private_key)
        n = tid
        try:
            while not self.stop.is_set():
                gid, user = self.targets[n % len(self.targets)]
                n += 1
                url = self.s.url(f"/groups/{gid}/databaseUsers/{user}/certs")
                try:
                    r = session.post(url, json={"monthsUntilExpiration": 3},
                                     headers={"Accept": V2}, timeout=(5, 60))
                except requests.RequestException as e:
                    with self.lock:
                        if self._before_kill():
                            self.pre_kill_failures.append(f"{type(e).__name__}: {e}")
                        else:
                            self.post_kill_errors += 1
                    if self.killed_at is not None:
                        return
                    time.sleep(0.05)
                    continue
                with self.lock:
                    if r.status_code == 201:
                        self.received.append((gid, user, r.text))
                    else:
                        self.pre_kill_failures.append(f"HTTP {r.status_code}: {r.text[:300]}")
        finally:
            session.close()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=90)
        assert not any(t.is_alive() for t in self.threads), "client threads did not finish"


def kill9(s: Server) -> None:
    """SIGKILL the `dbcerts serve` process itself (no wrapper in between) and reap it."""
    assert s.proc is not None
    pid = s.proc.pid
    alive = s.proc.poll()
    assert alive is None, f"server died by itself (exit {alive}); log:\n{tail(s)}"
    cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert [a.decode() for a in cmdline] == s.args, cmdline
    os.kill(pid, signal.SIGKILL)
    code = s.proc.wait(timeout=30)
    s.log.close()
    assert code == -signal.SIGKILL, code


def tail(s: Server, n: int = 4000) -> str:
    return s.log_path.read_text(errors="replace")[-n:]


def restart(s: Server) -> None:
    s.start()
    # conftest lists the log once per start; it is one file.
    conftest.SERVER_LOGS[:] = list(dict.fromkeys(conftest.SERVER_LOGS))


def sql(s: Server, statement: str) -> list[tuple]:
    return s.sql(statement)


class Checker:
    """What the clients were given, what was listed before, and the checks after a restart."""

    def __init__(self, s: Server) -> None:
        self.s = s
        self.postgres = bool(s.database_url and s.database_url.startswith("postgres"))
        self.targets: list[tuple[str, str]] = []
        self.received: dict[int, Received] = {}
        self.unchecked: list[Received] = []  # received since the last database check
        self.listed_before: set[int] = set()
        self.cas: dict[str, x509.Certificate] = {}
        self.amcheck = False
        self.checks = 0
        if self.postgres:
            try:
                sql(s, "CREATE EXTENSION IF NOT EXISTS amcheck")
                self.amcheck = True
            except subprocess.CalledProcessError as e:
                print(f"amcheck not available, skipping index checks: {e.stderr.strip()}")

    def add_target(self, gid: str, user: str) -> None:
        self.targets.append((gid, user))

    def receive(self, gid: str, user: str, pem: str) -> Received:
        rec = Received(gid, user, pem)
        assert rec.serial not in self.received, f"serial {rec.serial} handed out twice"
        self.received[rec.serial] = rec
        self.unchecked.append(rec)
        return rec

    def post_one(self, gid: str, user: str) -> Received:
        r = self.s.call("POST", f"/groups/{gid}/databaseUsers/{user}/certs",
                        json={"monthsUntilExpiration": 3})
        assert r.status_code == 201, r.text
        remember_private_key(r.text)
        return self.receive(gid, user, r.text)

    def list_all(self, gid: str, user: str) -> dict[int, dict]:
        items: dict[int, dict] = {}
        total = None
        page = 1
        while True:
            r = self.s.call("GET", f"/groups/{gid}/databaseUsers/{user}/certs",
                            params={"itemsPerPage": PAGE, "pageNum": page, "includeCount": "true"})
            assert r.status_code == 200, r.text
            body = r.json()
            if total is None:
                total = body["totalCount"]
            assert body["totalCount"] == total, (page, body["totalCount"], total)
            for item in body["results"]:
                assert item["_id"] not in items, f"serial {item['_id']} listed twice for {user}"
                items[item["_id"]] = item
            if len(body["results"]) < PAGE:
                break
            page += 1
        assert len(items) == total, f"{user}: {len(items)} items listed, totalCount {total}"
        return items

    def project_ca(self, gid: str) -> x509.Certificate:
        r = self.s.session.get(f"{self.s.root}/api/dbcerts/v1/groups/{gid}/ca", timeout=60)
        assert r.status_code == 200, r.text
        ca = x509.load_pem_x509_certificate(r.content)
        if gid in self.cas:
            assert ca == self.cas[gid], f"the CA of {gid} changed across a restart"
        self.cas[gid] = ca
        return ca

    def check(self) -> dict:
        """Every invariant, on the restarted server. Returns figures for the log line."""
        s = self.s
        self.checks += 1
        r = requests.get(f"{s.root}/health/ready", timeout=30)
        assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text

        # A certificate issued after the restart works (and is checked like the others).
        gid, user = self.targets[self.checks % len(self.targets)]
        self.post_one(gid, user)

        # The API: everything received is listed, once, as the client got it.
        listed: dict[int, dict] = {}
        where: dict[int, tuple[str, str]] = {}
        for gid, user in self.targets:
            for serial, item in self.list_all(gid, user).items():
                assert serial not in listed, f"serial {serial} listed under two users"
                listed[serial] = item
                where[serial] = (gid, user)
        missing = [sn for sn in self.received if sn not in listed]
        assert not missing, f"{len(missing)} received certificates are not listed, e.g. {missing[:5]}"
        gone = self.listed_before - listed.keys()
        assert not gone, f"{len(gone)} certificates listed before this crash are gone, e.g. {sorted(gone)[:5]}"
        for serial, rec in self.received.items():
            item = listed[serial]
            assert where[serial] == (rec.gid, rec.user), (serial, where[serial], rec.gid, rec.user)
            assert item["groupId"] == rec.gid, item
            assert item["notAfter"] == rec.not_after, (item, rec.not_after)
            assert item["createdAt"] == rec.not_before, (item, rec.not_before)
            assert item["subject"] == rec.subject, (item, rec.subject)
        self.listed_before = set(listed)

        # The project CAs: unchanged, and they signed what was received.
        for rec in self.unchecked:
            ca = self.cas.get(rec.gid) or self.project_ca(rec.gid)
            x509.load_der_x509_certificate(rec.der).verify_directly_issued_by(ca)
        for gid in {g for g, _ in self.targets}:
            self.project_ca(gid)

        # The database underneath.
        if self.postgres:
            if self.amcheck:
                sql(s, "SELECT c.relname, bt_index_check(c.oid, true) FROM pg_index i "
                       "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE a.amname = 'btree' AND n.nspname = 'public'")
        else:
            assert sql(s, "PRAGMA integrity_check") == [("ok",)]
            assert sql(s, "PRAGMA foreign_key_check") == []
        dups = sql(s, "SELECT serial, COUNT(*) FROM certificates GROUP BY serial HAVING COUNT(*) > 1")
        assert dups == [], f"duplicate serials in the certificates table: {dups[:5]}"
        rows = {int(sn) for (sn,) in sql(s, "SELECT serial FROM certificates")}
        assert rows == set(listed), (
            f"table and list differ: {len(rows - set(listed))} only in the table, "
            f"{len(set(listed) - rows)} only listed"
        )
        audited: list[int] = []
        for (details,) in sql(s, "SELECT details FROM audit_log WHERE action = 'certificate.issued'"):
            audited.append(int(json.loads(details)["serial"]))
        assert len(audited) == len(set(audited)), "a certificate has two audit entries"
        assert set(audited) == rows, (
            f"audit and certificates differ: {len(set(audited) - rows)} audited without a row, "
            f"{len(rows - set(audited))} rows without an audit entry"
        )
        if self.unchecked:
            for chunk in range(0, len(self.unchecked), 500):
                part = self.unchecked[chunk:chunk + 500]
                ids = ",".join(str(rec.serial) for rec in part)
                hexfn = "encode(cert, 'hex')" if self.postgres else "hex(cert)"
                stored = {int(sn): bytes.fromhex(h) for sn, h in
                          sql(s, f"SELECT serial, {hexfn} FROM certificates WHERE serial IN ({ids})")}
                for rec in part:
                    assert stored.get(rec.serial) == rec.der, f"stored DER of {rec.serial} differs from the PEM received"
            self.unchecked = []

        # The hash-chained audit log.
        out = subprocess.run([dbcerts_bin(), "audit", "verify", *s.store_args],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0 and "audit log intact" in out.stdout, out.stdout + out.stderr
        return {"listed": len(listed), "received": len(self.received),
                "never_received": len(listed) - len(self.received),
                "audit": out.stdout.strip()}


def new_target(s: Server, checker: Checker, gid: str | None = None) -> tuple[str, str]:
    gid = gid or s.create_project(f"crash-{uuid.uuid4().hex[:10]}")
    user = f"crash{uuid.uuid4().hex[:10]}"
    s.create_user(gid, user)
    checker.add_target(gid, user)
    return gid, user


def stable_binary(tmp: pathlib.Path) -> str:
    """A hard link (or copy) of the binary, so that a rebuild mid-run changes nothing."""
    src = dbcerts_bin()
    dst = tmp / "dbcerts"
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return str(dst)


def test_kill_9_under_load_loses_nothing(tmp_path, monkeypatch):
    seed = int(os.environ.get("DBCERTS_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    print(f"\ncrash test: backend={BACKEND} points={POINTS} seed={seed} "
          f"(replay with DBCERTS_CRASH_SEED={seed})", flush=True)
    monkeypatch.setenv("DBCERTS_BIN", stable_binary(tmp_path))

    data = pathlib.Path(tempfile.mkdtemp(dir=tmp_path))
    config = data.parent / f"{data.name}-unthrottled.toml"
    config.write_text("".join(f"{k} = {v}\n" for k, v in UNTHROTTLED.items()))
    s = Server(data, "--key-algorithm", "ecdsa-p256", "--config", str(config))
    started = time.monotonic()
    try:
        checker = Checker(s)
        gid = s.create_project("crash")
        for _ in range(USERS):
            new_target(s, checker, gid)
        checker.post_one(gid, checker.targets[0][1])  # the first project's CA exists before any kill

        total_lost = colds = 0
        for point in range(1, POINTS + 1):
            cold = rng.random() < 0.2
            short = cold or rng.random() < 0.15
            delay = rng.uniform(0.05, 0.3) if short else rng.uniform(0.3, 2.0)
            new_project = rng.random() < 0.2
            if new_project:
                new_target(s, checker)
            if cold:
                colds += 1
                kill9(s)  # the idle server: a crash too, checked with this point's
                restart(s)
            load = Load(s, checker.targets).start()
            try:
                time.sleep(delay)
                load.killed_at = time.monotonic()
                kill9(s)
            finally:
                load.join()
            ctx = (f"seed={seed} point={point} delay={delay:.3f}s cold={cold} "
                   f"new_project={new_project}")
            assert not load.pre_kill_failures, f"{ctx}: requests failed before the kill: {load.pre_kill_failures[:5]}"
            for i, (g, u, pem) in enumerate(load.received):
                checker.receive(g, u, pem)
                if i in (0, len(load.received) // 2, len(load.received) - 1):
                    remember_private_key(pem)
            try:
                restart(s)
            except RuntimeError as e:
                pytest.fail(f"{ctx}: the server did not come back: {e}")
            try:
                figures = checker.check()
            except AssertionError as e:
                raise AssertionError(f"{ctx}: {e}\nserver log tail:\n{tail(s)}") from e
            total_lost += load.post_kill_errors
            print(f"point {point:3d}: delay {delay:5.3f}s{' cold' if cold else ''}"
                  f"{' +project' if new_project else ''}: received {len(load.received):4d}, "
                  f"in flight at the kill {load.post_kill_errors}; "
                  f"now {figures['received']} received, {figures['listed']} listed "
                  f"({figures['never_received']} committed but never received); {figures['audit']}",
                  flush=True)
        elapsed = time.monotonic() - started
        print(f"crash test done: backend={BACKEND} seed={seed} points={POINTS} "
              f"received={len(checker.received)} listed={len(checker.listed_before)} "
              f"interrupted requests={total_lost} cold={colds} projects={len(checker.cas)} "
              f"amcheck={checker.amcheck} elapsed={elapsed:.1f}s", flush=True)
    finally:
        if s.proc and s.proc.poll() is None:
            code = s.stop()
            assert code == 0, f"server exited with {code}; log:\n{tail(s)}"
