"""Throw-away PostgreSQL clusters for the tests, from Debian's `postgresql` package.

A cluster lives in a temporary directory, listens on 127.0.0.1 on a free port (and on a Unix
socket in its own directory), requires a password over TCP, and is removed when stopped. As root
it runs as the unprivileged `postgres` user the package creates, since PostgreSQL refuses to run
as root.

Used two ways:
- `python3 tests/blackbox/pg_cluster.py run -- CMD...` starts a cluster, runs CMD with
  `DBCERTS_TEST_POSTGRES_URL` (a superuser URL) and `DBCERTS_TEST_PG_BINDIR` set, then removes
  the cluster, whatever CMD does. `scripts/test` wraps the whole suite in it.
- `PgCluster` from Python: the fault tests start their own cluster, to stop and start it.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.parse


def bindir() -> str:
    """The newest installed PostgreSQL server's bin directory."""
    env = os.environ.get("DBCERTS_TEST_PG_BINDIR")
    if env:
        return env
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]),
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return os.path.dirname(found[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """One PostgreSQL cluster in a temporary directory."""

    def __init__(self, port: int | None = None, parent: str | None = None,
                 command_prefix: tuple[str, ...] = ()) -> None:
        """`parent`: where the cluster's directory is made (default: the temporary directory).
        `command_prefix`: what PostgreSQL's own programs run under (test_io_faults.py runs them
        inside a private mount namespace with `nsenter`)."""
        self.bin = bindir()
        self.command_prefix = command_prefix
        self.dir = tempfile.mkdtemp(prefix="dbcerts-pg-", dir=parent)
        self.data = os.path.join(self.dir, "data")
        self.port = port or free_port()
        self.user = "dbcerts"
        self.password = secrets.token_hex(16)
        self.run_as = "postgres" if os.geteuid() == 0 else None
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self.run_as:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._pg(
            "initdb",
            "-D", self.data,
            "-U", self.user,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        os.unlink(pwfile)
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            f.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n"
                "fsync = on\nsynchronous_commit = on\n"
            )
        self.start()

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [os.path.join(self.bin, tool), *args]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        cmd = [*self.command_prefix, *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def start(self) -> None:
        self._pg("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def url(self, database: str = "postgres") -> str:
        password = urllib.parse.quote(self.password, safe="")
        return f"postgres://{self.user}:{password}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [os.path.join(self.bin, "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
             "-d", self.url(database), "-c", sql],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def create_database(admin_url: str, name: str) -> str:
    """Creates database `name` through `admin_url` and returns the URL of the new database."""
    subprocess.run(
        [os.path.join(bindir(), "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", admin_url,
         "-c", f'CREATE DATABASE "{name}"'],
        check=True, capture_output=True, text=True,
    )
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def _literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def query(url: str, statement: str, *params) -> list[tuple]:
    """Runs one statement with `?` placeholders (filled in as SQL literals) through psql;
    returns the rows as tuples of strings."""
    parts = statement.split("?")
    assert len(parts) == len(params) + 1, "one parameter per ?"
    sql = parts[0] + "".join(_literal(v) + rest for v, rest in zip(params, parts[1:]))
    out = subprocess.run(
        [os.path.join(bindir(), "psql"), "-X", "-q", "-t", "-A", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
         "-d", url, "-c", sql],
        check=True, capture_output=True, text=True,
    ).stdout
    return [tuple(line.split("\x1f")) for line in out.splitlines() if line]


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "run" or argv[1] != "--":
        print("usage: pg_cluster.py run -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    cluster = PgCluster()
    print(f"== PostgreSQL {os.path.basename(os.path.dirname(cluster.bin))} on 127.0.0.1:{cluster.port} in {cluster.dir}", flush=True)
    env = dict(os.environ, DBCERTS_TEST_POSTGRES_URL=cluster.url(), DBCERTS_TEST_PG_BINDIR=cluster.bin)
    child = subprocess.Popen(argv[2:], env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        return child.wait()
    finally:
        cluster.remove()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
