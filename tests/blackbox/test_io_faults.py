"""I/O faults during issuance: what `kill -9` cannot show.

`test_crash.py` kills the process, which leaves the operating system's page cache intact: it
proves atomicity, not that the server behaves when the disk itself fails. Here the fault is
injected into the real `dbcerts serve` process from outside, with Debian's libfiu
(`fiu-utils`): the server is started with libfiu's POSIX wrappers preloaded
(`fiu_run_preload.so`, `fiu_posix_preload.so`, what `fiu-run -x` sets up) and a control FIFO,
and `fiu-ctrl` switches a failure point on and off in the running process. libfiu's wrappers
make the call return -1 with errno set to the failure point's `failinfo` (5 = EIO, 28 = ENOSPC)
without doing the I/O.

Which calls reach the database files (strace of a SQLite server issuing one certificate): SQLite
writes its WAL and database pages with `pwrite64` and makes them durable with `fsync` (not
`fdatasync`); nothing else in the process calls either during issuance. `write(2)` is what
Tokio's wakers use on their eventfd and what the log uses, and SQLite never calls it on the
database files, so a libfiu `write` fault would break the runtime, not the store. Faults on
one file only (the database file's `fsync` without the WAL's: a failing checkpoint; `write` on
the database files) come from the project's own shim, `iofault_shim.c` (see
docs/RELIABILITY.md, "I/O faults").

The requests are authenticated with an OAuth Bearer token, which writes nothing: with
`digest-replay-check = "store"` a Digest request durably records its nonce count first, and the
fault would hit that write, not the certificate's.

On PostgreSQL the database files are written by the PostgreSQL server, another process: the
last test runs a cluster of its own inside the private namespace, its data directory on the
small disk, and fills that disk under `dbcerts serve`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import conftest
import pg_cluster
from conftest import BACKEND, UNTHROTTLED, Server, bearer_call, create_service_account, get_token

FIU_LIB = pathlib.Path("/usr/lib/fiu")
PRELOAD = [FIU_LIB / "fiu_run_preload.so", FIU_LIB / "fiu_posix_preload.so"]
EIO, ENOSPC = 5, 28
ATLAS_ERROR_KEYS = {"detail", "error", "errorCode", "parameters", "reason"}

SQLITE_ONLY = pytest.mark.skipif(BACKEND != "sqlite", reason="the database files of PostgreSQL are "
                                 "written by the PostgreSQL server process: its own case below")
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs in a private mount namespace needs root")
NEEDS_LIBFIU = pytest.mark.skipif(not (shutil.which("fiu-ctrl") and all(p.exists() for p in PRELOAD)),
                                  reason="libfiu (Debian fiu-utils) is not installed; scripts/test installs it")


class Issuer:
    """A `dbcerts serve` (P-256, unthrottled) started in the environment `preloaded()` gives (none
    here), with a Bearer token, a project and a MANAGED user to issue certificates to. Its data
    directory is `tmp/data`; `server_args` add to the command line (another database)."""

    def __init__(self, tmp: pathlib.Path, name: str, *server_args: str) -> None:
        data = tmp / "data"
        data.mkdir(mode=0o700)
        config = tmp / "unthrottled.toml"
        config.write_text("".join(f"{k} = {v}\n" for k, v in UNTHROTTLED.items()))
        with self.preloaded():
            self.s = Server(data, "--key-algorithm", "ecdsa-p256", "--config", str(config), *server_args)
        sa = create_service_account(self.s)
        self.token = get_token(self.s, sa["clientId"], sa["secrets"][0]["secret"])
        self.gid = self.s.create_project(f"{name}-{uuid.uuid4().hex[:8]}")
        self.user = f"{name}{uuid.uuid4().hex[:8]}"
        self.s.create_user(self.gid, self.user)

    @contextlib.contextmanager
    def preloaded(self):
        yield

    def start(self) -> None:
        with self.preloaded():
            self.s.start()

    def post_cert(self):
        return bearer_call(self.s, self.token, "POST",
                           f"/groups/{self.gid}/databaseUsers/{self.user}/certs",
                           json={"monthsUntilExpiration": 3})


class FaultyServer(Issuer):
    """An [`Issuer`] on SQLite with libfiu preloaded into the server."""

    def __init__(self, tmp: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fifo = tmp / "fiu"
        self.monkeypatch = monkeypatch
        super().__init__(tmp, "iof")

    @contextlib.contextmanager
    def preloaded(self):
        """libfiu in the environment of the server process only (Server.start copies
        os.environ): not in fiu-ctrl, a bash script that libfiu's wrappers crash now and then,
        nor in the operator commands."""
        with self.monkeypatch.context() as m:
            m.setenv("LD_PRELOAD", " ".join(str(p) for p in PRELOAD))
            m.setenv("FIU_CTRL_FIFO", str(self.fifo))
            m.setenv("FIU_ENABLE", "")
            yield

    def fiu(self, command: str) -> None:
        """Runs one libfiu control command in the server process (`fiu-ctrl`)."""
        assert self.s.proc is not None and self.s.proc.poll() is None, "the server is not running"
        out = subprocess.run(["fiu-ctrl", "-f", str(self.fifo), "-c", command, str(self.s.proc.pid)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "error" not in out.stdout, out.stdout + out.stderr


def serial_of(pem: str) -> int:
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def log_tail(s: Server, n: int = 3000) -> str:
    return s.log_path.read_text(errors="replace")[-n:]


def issue_until_refused(post, keep, tries: int, refusals: int = 3) -> list:
    """Issues on a full disk until `refusals` requests were refused (or `tries` were made),
    keeping every certificate answered 201: the store may still find room in pages it has."""
    refused = []
    for _ in range(tries):
        r = post()
        if r.status_code == 201:
            keep(r)
            continue
        refused.append(r)
        if len(refused) == refusals:
            break
    return refused


def refusal_problems(r, ctx: str) -> list[str]:
    """What is wrong with the answer to a certificate request whose write failed (Atlas's
    503, no key, no certificate), as a list of findings."""
    if "PRIVATE KEY" in r.text:
        return [f"{ctx}: HTTP {r.status_code} returned a PRIVATE KEY for a certificate whose write failed"]
    problems = []
    if "BEGIN CERTIFICATE" in r.text:
        problems.append(f"{ctx}: HTTP {r.status_code} returned a certificate")
    if r.status_code != 503:
        problems.append(f"{ctx}: HTTP {r.status_code}, not 503: {r.text[:200]}")
    elif r.headers.get("Retry-After") != "1":
        problems.append(f"{ctx}: 503 without Retry-After: 1 ({r.headers.get('Retry-After')!r})")
    try:
        body = r.json()
    except ValueError:
        return problems + [f"{ctx}: not JSON: {r.text[:200]}"]
    if set(body) != ATLAS_ERROR_KEYS:
        problems.append(f"{ctx}: not Atlas's error format: {body}")
    return problems


def store_problems(s: Server, received: dict[int, str], stored_der: dict[int, bytes] | None = None) -> list[str]:
    """What is wrong with the store of a restarted server: a certificate answered 201 that is
    not stored (or, given `stored_der`, stored with other bytes), SQLite's integrity_check,
    and `dbcerts audit verify` (the hash chain)."""
    problems = []
    if stored_der is None:
        stored = {int(sn) for (sn,) in s.sql("SELECT serial FROM certificates")}
        missing = sorted(set(received) - stored)
    else:
        missing = [sn for sn, pem in received.items() if stored_der.get(sn) !=
                   x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)]
    if missing:
        problems.append(f"{len(missing)} certificates answered 201 are not stored as answered after a "
                        f"restart, e.g. {missing[:5]}")
    if BACKEND == "sqlite" and s.sql("PRAGMA integrity_check") != [("ok",)]:
        problems.append(f"integrity_check: {s.sql('PRAGMA integrity_check')[:5]}")
    out = subprocess.run([conftest.dbcerts_bin(), "audit", "verify", *s.store_args],
                         capture_output=True, text=True, timeout=300)
    if not (out.returncode == 0 and "audit log intact" in out.stdout):
        problems.append(f"audit verify: {out.stdout} {out.stderr}")
    return problems


FAULTS = [
    pytest.param("posix/io/sync/fsync", EIO, id="fsync-EIO"),
    pytest.param("posix/io/sync/fsync", ENOSPC, id="fsync-ENOSPC"),
    pytest.param("posix/io/rw/pwrite", EIO, id="pwrite-EIO"),
    pytest.param("posix/io/rw/pwrite", ENOSPC, id="pwrite-ENOSPC"),
]


@SQLITE_ONLY
@NEEDS_LIBFIU
@pytest.mark.parametrize(("point", "errno"), FAULTS)
def test_a_failing_database_file_refuses_issuance_with_503_and_loses_nothing(tmp_path, monkeypatch, point, errno):
    f = FaultyServer(tmp_path, monkeypatch)
    s = f.s
    received: dict[int, str] = {}
    for _ in range(3):
        r = f.post_cert()
        assert r.status_code == 201, r.text
        conftest.remember_private_key(r.text)
        received[serial_of(r.text)] = r.text

    # Every finding is collected, and the test fails at the end with all of them: what the
    # server does at each step is the record of this fault.
    problems: list[str] = []
    f.fiu(f"enable name={point},failinfo={errno}")
    answers = [f.post_cert() for _ in range(3)]
    f.fiu(f"disable name={point}")
    for i, r in enumerate(answers):
        if r.status_code == 201:
            conftest.remember_private_key(r.text)
        problems += refusal_problems(r, f"under the fault, request {i}")

    # The fault cleared: the server issues again, or it has stopped with a clear message.
    time.sleep(0.2)
    if s.proc.poll() is None:
        after = [f.post_cert() for _ in range(3)]
        for i, r in enumerate(after):
            if r.status_code == 201:
                conftest.remember_private_key(r.text)
                received[serial_of(r.text)] = r.text
            else:
                problems.append(f"after the fault cleared, request {i}: HTTP {r.status_code} {r.text[:200]}")
        code = s.stop()
        if code != 0:
            problems.append(f"stopping after the fault: exit {code}")
    else:
        s.log.close()
        if s.proc.returncode == 0:
            problems.append("the server stopped with exit 0 after an I/O fault")

    # Restarted on the same store: everything answered 201 is there, the file is sound.
    f.start()
    try:
        problems += store_problems(s, received)
        r = f.post_cert()
        if r.status_code == 201:
            conftest.remember_private_key(r.text)
        else:
            problems.append(f"after a restart: HTTP {r.status_code} {r.text[:200]}")
    finally:
        s.stop()
    assert not problems, f"{point} errno={errno}:\n" + "\n".join(problems) + "\nserver log:\n" + log_tail(s)


@SQLITE_ONLY
@NEEDS_LIBFIU
def test_random_faults_under_concurrent_issuance_lose_nothing_answered_201(tmp_path, monkeypatch):
    """Eight clients issue at once (so the journal commits batches of several certificates)
    while `fsync` and `pwrite` on the database files fail at random, one call in three, with
    EIO or ENOSPC; then the faults stop. Every answer is a 201 with a certificate and its key,
    or Atlas's 503 with neither; after the faults every client gets 201 again; after a restart
    every certificate answered 201 is stored, byte for byte, and the audit chain is intact."""
    f = FaultyServer(tmp_path, monkeypatch)
    s = f.s
    lock = threading.Lock()
    received: dict[int, str] = {}
    problems: list[str] = []
    counts = {"201": 0, "503": 0}
    stop = threading.Event()

    def client(n: int) -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set():
            i += 1
            r = bearer_call(s, f.token, "POST", f"/groups/{f.gid}/databaseUsers/{f.user}/certs",
                            json={"monthsUntilExpiration": 3}, session=session)
            with lock:
                if r.status_code == 201 and "PRIVATE KEY" in r.text:
                    received[serial_of(r.text)] = r.text
                    counts["201"] += 1
                else:
                    counts["503"] += 1
                    problems.extend(refusal_problems(r, f"client {n} request {i}"))
        session.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(8)]
    for t in threads:
        t.start()
    try:
        rounds = [("posix/io/sync/fsync", EIO), ("posix/io/rw/pwrite", ENOSPC),
                  ("posix/io/sync/fsync", ENOSPC), ("posix/io/rw/pwrite", EIO)]
        for point, errno in rounds:
            before = counts["503"]
            f.fiu(f"enable_random name={point},probability=0.33,failinfo={errno}")
            # Until this fault has refused a few requests (each round must bite), or 30 s.
            deadline = time.monotonic() + 30
            while counts["503"] < before + 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            f.fiu(f"disable name={point}")
            if counts["503"] < before + 5:
                problems.append(f"{point} errno {errno} at p=0.33 refused only {counts['503'] - before} requests in 30 s")
        faults_over = counts["201"]
        deadline = time.monotonic() + 30
        while counts["201"] < faults_over + 16 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=90)
    if counts["201"] < faults_over + 16:
        problems.append(f"after the faults stopped only {counts['201'] - faults_over} certificates in 30 s")
    for pem in list(received.values())[:3]:
        conftest.remember_private_key(pem)
    code = s.stop()
    if code != 0:
        problems.append(f"stopping: exit {code}")
    f.start()
    try:
        stored = {int(sn): bytes.fromhex(h) for sn, h in s.sql("SELECT serial, hex(cert) FROM certificates")}
        problems += store_problems(s, received, stored)
    finally:
        s.stop()
    print(f"\nrandom faults: {counts['201']} answered 201, {counts['503']} refused; "
          f"{len(stored)} stored", flush=True)
    assert not problems, "\n".join(problems[:20]) + "\nserver log:\n" + log_tail(s)

# ---- faults on one file only: the project's own shim (tests/blackbox/iofault_shim.c) ----


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> pathlib.Path:
    """The shim, compiled for this run (`cc` is there wherever cargo links)."""
    cc = shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler (cc) for tests/blackbox/iofault_shim.c")
    out = tmp_path_factory.mktemp("shim") / "iofault_shim.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", str(out),
                    str(pathlib.Path(__file__).with_name("iofault_shim.c")), "-ldl"],
                   check=True, capture_output=True, text=True)
    return out


class ShimServer(Issuer):
    """An [`Issuer`] on SQLite with the shim preloaded (into the server only), the file of
    faults in force, and the shim's log."""

    def __init__(self, tmp: pathlib.Path, shim: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                 faults: str = "") -> None:
        self.ctl, self.log = tmp / "faults", tmp / "shim.log"
        self.ctl.write_text(faults)
        self.shim, self.monkeypatch = shim, monkeypatch
        self.db = tmp / "data" / "dbcerts.db"
        super().__init__(tmp, "shim")

    @contextlib.contextmanager
    def preloaded(self):
        with self.monkeypatch.context() as m:
            m.setenv("LD_PRELOAD", str(self.shim))
            m.setenv("IOFAULT_CTL", str(self.ctl))
            m.setenv("IOFAULT_LOG", str(self.log))
            yield

    def shim_log(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@SQLITE_ONLY
def test_sqlite_never_calls_write_on_the_database_files(tmp_path, shim, monkeypatch):
    """`write(2)` failing with EIO on the database file, its WAL and its shared-memory file:
    issuance is unaffected, and the shim saw no `write` on them at all. (This is why a
    `write` fault is not among the cases above: SQLite writes with `pwrite`.)"""
    f = ShimServer(tmp_path, shim, monkeypatch)
    f.ctl.write_text("".join(f"write {f.db}{suffix} {EIO}\n" for suffix in ("", "-wal", "-shm")))
    try:
        for _ in range(20):
            r = f.post_cert()
            assert r.status_code == 201, r.text
            conftest.remember_private_key(r.text)
        assert f.shim_log() == [], f.shim_log()[:5]
    finally:
        f.s.stop()


@SQLITE_ONLY
def test_a_failing_checkpoint_sync_loses_nothing_and_is_redone(tmp_path, shim, monkeypatch):
    """Only the database file's `fsync` fails (EIO), never the WAL's: what SQLite's automatic
    checkpoint (at 1,000 WAL pages) does when it has copied pages into the database file and
    cannot make them durable. Certificates are issued until the shim has failed such a sync,
    and 20 more; then the fault clears, and they are issued until a checkpoint's sync of the
    database file succeeds. Every request is answered 201 (each commit's WAL was synced); after
    a restart every certificate is stored, integrity_check ok, audit chain intact."""
    f = ShimServer(tmp_path, shim, monkeypatch)
    s = f.s
    db = str(f.db)
    received: dict[int, str] = {}
    problems: list[str] = []

    def issue_until(done, limit: int, what: str) -> None:
        for i in range(limit):
            r = f.post_cert()
            if r.status_code == 201:
                received[serial_of(r.text)] = r.text
            else:
                problems.append(f"{what}, request {i}: HTTP {r.status_code} {r.text[:200]}")
                problems.extend(refusal_problems(r, f"{what}, request {i}"))
            if done():
                return
        problems.append(f"{what}: not reached in {limit} requests; shim log: {f.shim_log()[-5:]}")

    f.ctl.write_text(f"fsync {db} {EIO}\n")
    issue_until(lambda: f"fsync {db}" in f.shim_log(), 2000, "until a checkpoint's sync fails")
    failed_at = len(f.shim_log())
    for _ in range(20):
        issue_until(lambda: True, 1, "after a failed checkpoint sync")
    f.ctl.write_text(f"fsync {db} 0\n")  # 0: named, so its successful syncs are logged; no fault
    issue_until(lambda: f"ok fsync {db}" in f.shim_log()[failed_at:], 2000,
                "fault cleared, until a checkpoint's sync succeeds")
    failures = sum(1 for line in f.shim_log() if line == f"fsync {db}")
    for pem in list(received.values())[:3]:
        conftest.remember_private_key(pem)
    code = s.stop()
    if code != 0:
        problems.append(f"stopping: exit {code}")
    f.start()
    try:
        problems += store_problems(s, received)
    finally:
        s.stop()
    print(f"\ncheckpoint fault: {len(received)} answered 201; the database file's fsync failed "
          f"{failures} times", flush=True)
    assert not problems, "\n".join(problems[:20]) + "\nserver log:\n" + log_tail(s)

# ---- a real full disk: a size-limited tmpfs in a private mount namespace ----

DISK_SIZE = "16m"

DB_CHECK = r"""
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(json.dumps({
    "integrity": db.execute("PRAGMA integrity_check").fetchall(),
    "serials": [int(s) for (s,) in db.execute("SELECT serial FROM certificates")],
}))
"""


class SmallDisk:
    """A tmpfs of DISK_SIZE mounted on `path` in a mount namespace of its own, held by a
    `sleep` that `unshare -m` started: nothing outside that namespace sees the mount, and it
    goes away with the holder. Processes enter it with `nsenter -t HOLDER -m`; the test reaches
    its files through `/proc/HOLDER/root`."""

    def __init__(self, path: pathlib.Path, size: str = DISK_SIZE, mode: str = "0700",
                 holder_user: str | None = None) -> None:
        """`holder_user`: the user the holding `sleep` runs as, so that this user's processes
        inside the namespace may use `/proc/HOLDER/root` paths too (PostgreSQL's, which run
        as `postgres`)."""
        self.path = path
        path.mkdir(mode=0o700, exist_ok=True)
        hold = "exec sleep 3600"
        if holder_user:
            hold = f"exec setpriv --reuid={holder_user} --regid={holder_user} --clear-groups sleep 3600"
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f'mount -t tmpfs -o size={size},mode={mode} dbcerts-small-disk "$0" && echo mounted '
             f'&& {hold}', str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline().strip()
        if line != "mounted":
            self.holder.wait(timeout=30)
            err = self.holder.stderr.read().strip()
            pytest.skip(f"this machine does not allow a private tmpfs (unshare -m + mount -t tmpfs): {err}")

    def inside(self, rel: str = "") -> pathlib.Path:
        """A path under the tmpfs, as the test (outside the namespace) reaches it; inside the
        namespace the same path names the same file."""
        return pathlib.Path(f"/proc/{self.holder.pid}/root{self.path}") / rel

    def enter(self) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--"]

    def fill(self) -> int:
        """Writes a filler file until the tmpfs refuses with ENOSPC; returns its size."""
        written = 0
        with open(self.inside("filler"), "wb", buffering=0) as out:
            for chunk in (b"\0" * 65536, b"\0" * 4096):
                while True:
                    try:
                        written += out.write(chunk)
                    except OSError as e:
                        assert e.errno == ENOSPC, e
                        break
        return written

    def free(self) -> None:
        self.inside("filler").unlink()

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait(timeout=30)


@SQLITE_ONLY
@AS_ROOT
def test_a_full_disk_refuses_issuance_with_503_and_the_server_recovers_when_space_returns(tmp_path, monkeypatch):
    disk = SmallDisk(tmp_path / "disk")
    try:
        # The server (and the operator commands) run inside the namespace: `exec` keeps the
        # pid, so the Server object's process is `dbcerts serve` itself.
        wrapper = tmp_path / "dbcerts-on-small-disk"
        wrapper.write_text(f'#!/bin/sh\nexec {" ".join(disk.enter())} "{conftest.dbcerts_bin()}" "$@"\n')
        wrapper.chmod(0o700)
        monkeypatch.setenv("DBCERTS_BIN", str(wrapper))
        # Credentials, master key and the log in tmp_path/data, on the real disk.
        db = disk.path / "dbcerts.db"
        issuer = Issuer(tmp_path, "full", "--database-url", f"sqlite://{db}")
        s, post = issuer.s, issuer.post_cert

        received: dict[int, str] = {}

        def keep(r) -> None:
            conftest.remember_private_key(r.text)
            received[serial_of(r.text)] = r.text

        for _ in range(3):
            r = post()
            assert r.status_code == 201, r.text
            keep(r)

        filler = disk.fill()
        # SQLite reuses pages it already has (the WAL is rewritten from its start after a
        # checkpoint), so some certificates may still be recorded on the full disk: issue until
        # a write needs a new page.
        problems: list[str] = []
        refused = issue_until_refused(post, keep, tries=400)
        assert refused, f"{len(received)} certificates recorded on a full disk ({filler} bytes of filler): never refused"
        for i, r in enumerate(refused):
            problems += refusal_problems(r, f"disk full, refusal {i}")

        disk.free()
        after = [post() for _ in range(3)]
        for i, r in enumerate(after):
            if r.status_code == 201:
                keep(r)
            else:
                problems.append(f"space back, request {i}: HTTP {r.status_code} {r.text[:200]}")
        code = s.stop()
        if code != 0:
            problems.append(f"stopping: exit {code}")

        s.start()
        try:
            out = subprocess.run([*disk.enter(), sys.executable, "-c", DB_CHECK, str(db)],
                                 capture_output=True, text=True, timeout=120, check=True)
            state = json.loads(out.stdout)
            if state["integrity"] != [["ok"]]:
                problems.append(f"integrity_check: {state['integrity']}")
            missing = set(received) - set(state["serials"])
            if missing:
                problems.append(f"certificates answered 201 are gone after a restart: {sorted(missing)}")
            r = post()
            if r.status_code == 201:
                keep(r)
            else:
                problems.append(f"after a restart: HTTP {r.status_code} {r.text[:200]}")
            audit = subprocess.run([str(wrapper), "audit", "verify", *s.store_args],
                                   capture_output=True, text=True, timeout=300)
            if not (audit.returncode == 0 and "audit log intact" in audit.stdout):
                problems.append(f"audit verify: {audit.stdout} {audit.stderr}")
        finally:
            s.stop()
        print(f"\nfull disk: {len(received)} certificates answered 201, {len(refused)} refused; "
              f"filler {filler} bytes", flush=True)
        assert not problems, "full disk:\n" + "\n".join(problems) + "\nserver log:\n" + log_tail(s)
    finally:
        disk.close()



@pytest.mark.skipif(BACKEND != "postgres", reason="the PostgreSQL case; the SQLite ones are above")
@AS_ROOT
def test_a_full_disk_under_postgresql_is_a_503_and_the_node_recovers(tmp_path):
    """A PostgreSQL cluster of its own runs inside the private namespace with its data directory
    on a 160 MiB tmpfs (`PgCluster` with `nsenter` as its command prefix); `dbcerts serve` runs
    outside, over TCP. The disk is filled; certificates are requested until PostgreSQL refuses
    to extend a table; then its WAL needs a new segment file, and PostgreSQL PANICs and stops;
    the filler is removed, and PostgreSQL is started again if the fault stopped it (what an
    operator does). Checks as for SQLite: 503 in Atlas's format with no key, 201 again without
    restarting dbcerts, nothing answered 201 lost (PostgreSQL's crash recovery included)."""
    mnt = pathlib.Path(tempfile.mkdtemp(prefix="dbcerts-pgdisk-"))  # short: PostgreSQL's socket path
    disk = SmallDisk(mnt, size="160m", mode="0755", holder_user="postgres" if os.geteuid() == 0 else None)
    cluster = s = None
    notes: list[str] = []
    try:
        cluster = pg_cluster.PgCluster(parent=str(disk.inside()), command_prefix=tuple(disk.enter()))
        url = pg_cluster.create_database(cluster.url(), f"iofaults_{uuid.uuid4().hex[:12]}")
        issuer = Issuer(tmp_path, "pgfull", "--database-url", url)
        s, post = issuer.s, issuer.post_cert

        received: dict[int, str] = {}
        problems: list[str] = []

        def keep(r) -> None:
            conftest.remember_private_key(r.text)
            received[serial_of(r.text)] = r.text

        for _ in range(3):
            r = post()
            assert r.status_code == 201, r.text
            keep(r)
        filler = disk.fill()
        refused = issue_until_refused(post, keep, tries=3000)
        assert refused, f"{len(received)} certificates recorded on a full disk: never refused"
        for i, r in enumerate(refused):
            problems += refusal_problems(r, f"disk full, refusal {i}")

        # The WAL needs a new segment file on the full disk. In service that happens every
        # 16 MiB of WAL; `pg_switch_wal()` brings the moment forward. PostgreSQL cannot create
        # the file and PANICs ("could not write to file pg_wal/xlogtemp...: No space left on
        # device"), and its crash recovery fails on the same full disk, so it stops: it refuses
        # to go on. Meanwhile dbcerts answers 503.
        cluster.psql("SELECT pg_switch_wal()")
        for i in range(3):
            r = post()
            if r.status_code == 201:
                problems.append(f"201 while PostgreSQL had no room for its WAL, request {i}")
                keep(r)
            else:
                problems += refusal_problems(r, f"WAL segment on a full disk, request {i}")
        disk.free()
        running = cluster._pg("pg_ctl", "-D", cluster.data, "status", check=False).returncode == 0
        notes.append(f"PostgreSQL {'kept running' if running else 'had stopped'} on the full disk")
        if not running:
            cluster.start()  # what the operator does once there is room again
        # dbcerts' pool reconnects by itself; allow it a bounded number of tries.
        for i in range(60):
            r = post()
            if r.status_code == 201:
                keep(r)
                notes.append(f"201 again after {i} refusals")
                break
            problems += refusal_problems(r, f"space back, request {i}")
            time.sleep(0.5)
        else:
            problems.append("no 201 in 60 requests after the space came back")
        code = s.stop()
        if code != 0:
            problems.append(f"stopping: exit {code}")
        s.start()
        problems += store_problems(s, received)
        pglog = (pathlib.Path(cluster.dir) / "server.log").read_text(errors="replace")
        print(f"\nPostgreSQL full disk: {len(received)} answered 201, {len(refused)} refused, filler "
              f"{filler} bytes; {'; '.join(notes)}\nPostgreSQL log (errors):\n" +
              "\n".join(line for line in pglog.splitlines() if "ERROR" in line or "PANIC" in line
                        or "FATAL" in line)[-3000:], flush=True)
        assert not problems, "\n".join(problems) + "\n" + "; ".join(notes) + "\nserver log:\n" + log_tail(s)
    finally:
        if s is not None and s.proc and s.proc.poll() is None:
            s.stop()
        if cluster is not None:
            cluster.remove()
        disk.close()
        mnt.rmdir()
