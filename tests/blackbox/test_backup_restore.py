"""`dbcerts backup` and `dbcerts restore` of a SQLite database, with the real binary.

A backup is taken while the server runs and issues certificates; a restore is refused while the
server runs, refused for a damaged file or for a backup the master key does not open (leaving
the current database as it was), and otherwise brings back exactly the backed-up state: the
certificates issued before the backup and none issued after, the same API keys, an intact
audit chain. Disaster recovery into an empty data directory works with the master key put back.

These servers run on SQLite whatever `DBCERTS_TEST_BACKEND` says: backup and restore are
SQLite commands (PostgreSQL is backed up with its own tools).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import shutil
import sqlite3
import stat
import subprocess
import time

import pytest
import requests
from requests.auth import HTTPDigestAuth

from _certs_util import split_pem, unique_user
from conftest import V2, Server, dbcerts_bin, remember_private_key

from conftest import BACKEND

# The suite runs twice (SQLite, then PostgreSQL); these tests need one backend, so they run once.
pytestmark = pytest.mark.skipif(BACKEND == "postgres", reason="backup/restore (SQLite) runs in the SQLite pass of the suite")

DB = "dbcerts.db"


def dbcerts(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([dbcerts_bin(), *args], capture_output=True, text=True, timeout=120)


def sqlite_args(data: pathlib.Path) -> list[str]:
    return ["--database-url", f"sqlite://{data / DB}"]


def start(data: pathlib.Path) -> Server:
    data.mkdir(mode=0o700, exist_ok=True)
    return Server(data, "--key-algorithm", "ecdsa-p256", "--key-pool-size", "2", *sqlite_args(data))


@pytest.fixture()
def servers():
    """Starts SQLite servers in given data directories; stops any still running at the end."""
    started: list[Server] = []

    def make(data: pathlib.Path) -> Server:
        s = start(data)
        started.append(s)
        return s

    yield make
    for s in started:
        if s.proc and s.proc.poll() is None:
            code = s.stop()
            assert code == 0, f"server exited with {code}; log:\n{s.log_path.read_text()}"


def issue(s: Server, gid: str, user: str) -> int:
    r = s.call("POST", f"/groups/{gid}/databaseUsers/{user}/certs", json={"monthsUntilExpiration": 3})
    assert r.status_code == 201, r.text
    remember_private_key(r.text)
    return split_pem(r.text).cert.serial_number


def listed_serials(s: Server, gid: str, user: str, auth=None) -> list[int]:
    r = requests.get(
        s.url(f"/groups/{gid}/databaseUsers/{user}/certs?itemsPerPage=500"),
        headers={"Accept": V2},
        auth=auth or s.auth,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totalCount"] == len(body["results"])
    return sorted(c["_id"] for c in body["results"])


def files_digest(data: pathlib.Path) -> dict[str, str]:
    """The SHA-256 of every file in the data directory (the database, its WAL, the key...)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.iterdir())
        if p.is_file() and p.name != "server.log"
    }


def write_key_file(path: pathlib.Path) -> pathlib.Path:
    """A master key file as the server writes one: 32 random bytes in base64, mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    return path


def rows(db: pathlib.Path, table: str) -> int:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        c.close()


def assert_refused_untouched(out: subprocess.CompletedProcess, data: pathlib.Path, before: dict[str, str]) -> None:
    assert out.returncode != 0, f"restore was not refused: {out.args[1:4]} -> {out.stdout.strip()}"
    assert files_digest(data) == before, "a refused restore changed the data directory"
    assert not list(data.glob(f"{DB}.pre-restore-*"))
    assert not list(data.glob(f"{DB}.restoring*"))


# ------------------------------------------------------------------ the whole round trip


def test_backup_while_serving_then_restore_brings_back_exactly_that_state(servers, tmp_path):
    data = tmp_path / "node"
    s = servers(data)
    gid = s.create_project()
    user = unique_user("bk")
    s.create_user(gid, user)
    before_backup = sorted(issue(s, gid, user) for _ in range(3))

    backup = tmp_path / "backups" / "dbcerts-backup.db"
    backup.parent.mkdir()
    out = dbcerts("backup", "--to", str(backup), *s.store_args)
    assert out.returncode == 0, out.stderr
    assert f"backed up 1 projects, 1 database users, 3 certificates to {backup}" in out.stdout, out.stdout
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert rows(backup, "certificates") == 3
    # The copy holds sealed secrets only: the master key is not in it.
    master_text = (data / "master.key").read_text().strip()
    assert master_text.encode() not in backup.read_bytes()
    assert base64.b64decode(master_text) not in backup.read_bytes()

    # A second backup to the same file is refused and leaves the first one as it was.
    first = backup.read_bytes()
    again = dbcerts("backup", "--to", str(backup), *s.store_args)
    assert again.returncode != 0, again.stdout
    assert str(backup) in again.stderr, again.stderr
    assert backup.read_bytes() == first

    # The server kept serving; these come after the backup.
    later_user = unique_user("late")
    s.create_user(gid, later_user)
    after_backup = [issue(s, gid, user) for _ in range(2)] + [issue(s, gid, later_user)]
    assert listed_serials(s, gid, user) == sorted(before_backup + after_backup[:2])

    # Restore is refused while the server has the database open.
    busy = dbcerts("restore", "--from", str(backup), *s.store_args)
    assert busy.returncode != 0, busy.stdout
    assert "is in use" in busy.stderr, busy.stderr
    assert not list(data.glob(f"{DB}.pre-restore-*"))
    assert listed_serials(s, gid, user) == sorted(before_backup + after_backup[:2])

    assert s.stop() == 0
    out = dbcerts("restore", "--from", str(backup), *s.store_args)
    assert out.returncode == 0, out.stderr
    assert f"restored 1 projects, 1 database users, 3 certificates from {backup} into {data / DB}" in out.stdout, out.stdout
    [kept] = data.glob(f"{DB}.pre-restore-*")
    assert f"the replaced database is at {kept}" in out.stdout
    # The replaced database is kept whole beside it (WAL moved with it).
    assert rows(kept, "certificates") == 6
    assert backup.read_bytes() == first, "restore changed the backup file"

    s.start()  # same data directory, same bootstrap credentials file
    assert listed_serials(s, gid, user) == before_backup
    r = s.call("GET", f"/groups/{gid}/databaseUsers/$external/{later_user}")
    assert r.status_code == 404, r.text
    # The bootstrap credentials still work, from a client that never talked to this process.
    creds = json.loads((data / "bootstrap-credentials.json").read_text())
    fresh = HTTPDigestAuth(creds["publicKey"], creds["privateKey"])
    assert listed_serials(s, gid, user, auth=fresh) == before_backup
    # The restored server issues again, and lists what it issues.
    newer = issue(s, gid, user)
    assert newer not in before_backup + after_backup
    assert listed_serials(s, gid, user) == sorted(before_backup + [newer])

    verify = dbcerts("audit", "verify", *s.store_args)
    assert verify.returncode == 0, verify.stderr
    assert "audit log intact" in verify.stdout, verify.stdout
    entries = [
        json.loads(line)
        for line in dbcerts("audit", "list", "--json", *s.store_args).stdout.splitlines()
    ]
    issued = [e["details"]["serial"] for e in entries if e["action"] == "certificate.issued"]
    assert sorted(issued) == sorted(before_backup + [newer])


# ------------------------------------------------------------------ refusals


def test_restore_of_garbage_or_a_damaged_backup_is_refused_and_changes_nothing(servers, tmp_path):
    data = tmp_path / "node"
    s = servers(data)
    gid = s.create_project()
    user = unique_user("gb")
    s.create_user(gid, user)
    serials = sorted(issue(s, gid, user) for _ in range(2))
    good = tmp_path / "good.db"
    assert dbcerts("backup", "--to", str(good), *s.store_args).returncode == 0
    assert s.stop() == 0
    before = files_digest(data)

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(64 * 1024))
    out = dbcerts("restore", "--from", str(garbage), *s.store_args)
    assert_refused_untouched(out, data, before)
    assert "not a database" in out.stderr, out.stderr

    # A real backup with pages in the middle overwritten: the header still says SQLite.
    damaged = tmp_path / "damaged.db"
    raw = bytearray(good.read_bytes())
    page = int.from_bytes(raw[16:18], "big") or 65536
    assert len(raw) >= 4 * page, len(raw)
    for p in range(2, len(raw) // page):
        raw[p * page + 8 : p * page + 200] = os.urandom(192)
    damaged.write_bytes(bytes(raw))
    out = dbcerts("restore", "--from", str(damaged), *s.store_args)
    assert_refused_untouched(out, data, before)

    out = dbcerts("restore", "--from", str(tmp_path / "no-such.db"), *s.store_args)
    assert_refused_untouched(out, data, before)
    assert "is not a file" in out.stderr, out.stderr

    s.start()
    assert listed_serials(s, gid, user) == serials


def test_restore_of_a_file_that_is_no_dbcerts_backup_is_refused(servers, tmp_path):
    """An empty file, or a valid SQLite database of some other program, holds no master-key
    check value: nothing shows the master key opens it, so it is not a backup to restore."""
    data = tmp_path / "node"
    s = servers(data)
    gid = s.create_project()
    user = unique_user("nb")
    s.create_user(gid, user)
    serials = [issue(s, gid, user)]
    assert s.stop() == 0
    before = files_digest(data)

    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.db"
    c = sqlite3.connect(foreign)
    c.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    c.execute("INSERT INTO notes (body) VALUES ('not a dbcerts database')")
    c.commit()
    c.close()
    for candidate in (empty, foreign):
        out = dbcerts("restore", "--from", str(candidate), *s.store_args)
        assert_refused_untouched(out, data, before)

    s.start()
    assert listed_serials(s, gid, user) == serials


def test_restore_with_another_master_key_is_refused(servers, tmp_path):
    data = tmp_path / "node"
    s = servers(data)
    gid = s.create_project()
    user = unique_user("mk")
    s.create_user(gid, user)
    serials = [issue(s, gid, user)]
    backup = tmp_path / "backup.db"
    assert dbcerts("backup", "--to", str(backup), *s.store_args).returncode == 0

    # A second installation, with its own master key and its own certificate.
    other_data = tmp_path / "other"
    other = servers(other_data)
    other_gid = other.create_project()
    other.create_user(other_gid, user)
    other_serials = [issue(other, other_gid, user)]
    other_backup = tmp_path / "other-backup.db"
    assert dbcerts("backup", "--to", str(other_backup), *other.store_args).returncode == 0
    assert s.stop() == 0
    assert other.stop() == 0
    before = files_digest(data)

    # This node's backup with a key that did not seal it.
    stranger = write_key_file(tmp_path / "stranger.key")
    out = dbcerts("restore", "--from", str(backup), "--master-key-file", str(stranger), *s.store_args)
    assert_refused_untouched(out, data, before)
    assert "master key does not open this backup" in out.stderr, out.stderr

    # The other installation's backup with this node's key.
    out = dbcerts("restore", "--from", str(other_backup), *s.store_args)
    assert_refused_untouched(out, data, before)
    assert "master key does not open this backup" in out.stderr, out.stderr

    s.start()
    assert listed_serials(s, gid, user) == serials
    other.start()
    assert listed_serials(other, other_gid, user) == other_serials


def test_every_restore_keeps_the_database_it_replaced(servers, tmp_path):
    """Two restores in a row (the wrong backup, then the right one) keep both replaced
    databases, even within one second (the kept file's name has one-second resolution)."""
    data = tmp_path / "node"
    s = servers(data)
    gid = s.create_project()
    user = unique_user("tw")
    s.create_user(gid, user)
    issue(s, gid, user)
    one = tmp_path / "one.db"
    assert dbcerts("backup", "--to", str(one), *s.store_args).returncode == 0
    issue(s, gid, user)
    two = tmp_path / "two.db"
    assert dbcerts("backup", "--to", str(two), *s.store_args).returncode == 0
    issue(s, gid, user)
    assert s.stop() == 0

    # Start just after a second turns, so that both restores fall within one second if the
    # machine is fast enough; slower, they simply get names of their own.
    time.sleep(1 - time.time() % 1 + 0.01)
    for backup in (one, two):
        out = dbcerts("restore", "--from", str(backup), *s.store_args)
        assert out.returncode == 0, out.stderr
    assert rows(data / DB, "certificates") == 2
    kept = sorted(rows(p, "certificates") for p in data.glob(f"{DB}.pre-restore-*") if not p.name.endswith(("-wal", "-shm")))
    assert kept == [1, 3], f"replaced databases kept: {kept} certificates (want the 3-cert original and the 1-cert one)"


# ------------------------------------------------------------------ disaster recovery


def test_disaster_recovery_into_an_empty_data_dir(servers, tmp_path):
    data = tmp_path / "lost"
    s = servers(data)
    gid = s.create_project()
    user = unique_user("dr")
    s.create_user(gid, user)
    serials = sorted(issue(s, gid, user) for _ in range(2))
    ca_before = s.export_ca(gid)
    backup = tmp_path / "offsite" / "dbcerts.db"
    backup.parent.mkdir()
    assert dbcerts("backup", "--to", str(backup), *s.store_args).returncode == 0
    shutil.copy2(data / "master.key", backup.parent / "master.key")
    shutil.copy2(data / "bootstrap-credentials.json", backup.parent / "bootstrap-credentials.json")
    assert s.stop() == 0

    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o700)
    # Without the master key the restore is refused, naming what is missing, and writes nothing.
    out = dbcerts("restore", "--from", str(backup), "--data-dir", str(fresh), *sqlite_args(fresh))
    assert out.returncode != 0, out.stdout
    assert "no master key" in out.stderr and str(fresh / "master.key") in out.stderr, out.stderr
    assert list(fresh.iterdir()) == []

    shutil.copy2(backup.parent / "master.key", fresh / "master.key")
    os.chmod(fresh / "master.key", 0o600)
    out = dbcerts("restore", "--from", str(backup), "--data-dir", str(fresh), *sqlite_args(fresh))
    assert out.returncode == 0, out.stderr
    assert f"restored 1 projects, 1 database users, 2 certificates from {backup} into {fresh / DB}" in out.stdout
    assert "replaced" not in out.stdout
    restored = sorted(p.name for p in fresh.iterdir() if not p.name.endswith(".lock"))
    assert restored == [DB, "master.key"], restored

    # The restored database is not empty, so the server bootstraps nothing: it writes no new
    # credentials, and the operator's saved bootstrap credentials are the way in.
    shutil.copy2(backup.parent / "bootstrap-credentials.json", fresh / "bootstrap-credentials.json")
    saved = (fresh / "bootstrap-credentials.json").read_bytes()
    r = servers(fresh)
    assert (fresh / "bootstrap-credentials.json").read_bytes() == saved
    assert r.org_id == s.org_id and r.public_key == s.public_key
    assert listed_serials(r, gid, user) == serials
    assert r.export_ca(gid) == ca_before
    assert len(r.sql("SELECT id FROM organizations")) == 1
    assert issue(r, gid, user) not in serials
    verify = dbcerts("audit", "verify", *r.store_args)
    assert verify.returncode == 0 and "audit log intact" in verify.stdout, (verify.stdout, verify.stderr)
