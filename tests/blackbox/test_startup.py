"""`dbcerts serve` starting up, seen from outside: a start that cannot bind its port leaves
nothing behind, and the log is plain text unless it goes to a terminal.

The servers here are the real binary on a real socket with a real store (SQLite, or a database
of its own on the test PostgreSQL cluster).
"""

from __future__ import annotations

import os
import pathlib
import pty
import select
import signal
import socket
import subprocess
import time

import pg_cluster
from conftest import SERVER_LOGS, dbcerts_bin, new_database_url

FAST = ["--key-algorithm", "ecdsa-p256", "--key-pool-size", "0"]


def test_a_taken_port_stops_startup_before_anything_is_created(tmp_path):
    data = tmp_path / "new-data"
    database_url = new_database_url()
    store = ["--database-url", database_url] if database_url else []
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        p = subprocess.run(
            [dbcerts_bin(), "serve", "--data-dir", str(data), "--listen", f"127.0.0.1:{port}", *FAST, *store],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert p.returncode != 0, p.stdout
    assert "listening" not in p.stdout
    assert f"binding 127.0.0.1:{port}" in p.stderr, p.stderr
    # No organization, master key or credentials file, not even the data directory.
    assert not data.exists(), sorted(str(f.relative_to(data)) for f in data.rglob("*"))
    if database_url:
        tables = pg_cluster.query(
            database_url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == [], f"nothing may be written to the database either: {tables}"

    # The port free again, the same directory (and database) starts and bootstraps as new.
    p = subprocess.Popen(
        [dbcerts_bin(), "serve", "--data-dir", str(data), "--listen", f"127.0.0.1:{port}", *FAST, *store],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert "listening on" in p.stdout.readline().decode()
        assert (data / "bootstrap-credentials.json").exists()
        assert (data / "master.key").exists()
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0


def start(data: pathlib.Path, stderr) -> tuple[subprocess.Popen, list[str]]:
    database_url = new_database_url()
    store = ["--database-url", database_url] if database_url else []
    args = [dbcerts_bin(), "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0", *FAST, *store]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, env=dict(env, DBCERTS_LOG="info"))
    line = p.stdout.readline().decode()
    assert "listening on" in line, line
    return p, args


def test_the_log_written_to_a_file_has_no_colour_codes(tmp_path):
    log = tmp_path / "server.log"
    SERVER_LOGS.append(log)
    with open(log, "wb") as f:
        p, _ = start(tmp_path / "data", f)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    text = log.read_bytes()
    assert b"dbcerts listening" in text and b"stopped" in text, text
    assert b"\x1b" not in text, text[:400]


def test_the_log_on_a_terminal_is_coloured(tmp_path):
    """The other half of the rule: colour stays for a person at a terminal."""
    master, slave = pty.openpty()
    try:
        p, _ = start(tmp_path / "data", slave)
        os.close(slave)
        slave = -1
        shown = b""
        deadline = time.monotonic() + 30
        while b"dbcerts listening" not in shown and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                shown += os.read(master, 4096)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert b"dbcerts listening" in shown, shown
    assert b"\x1b[" in shown, shown[:400]
