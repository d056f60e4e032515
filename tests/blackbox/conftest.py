"""Fixtures that start the real `dbcerts` binary on an ephemeral loopback port.

Every black-box test talks to a real server process over a real socket, with a real SQLite
file in a temporary data directory, or, with `DBCERTS_TEST_BACKEND=postgres`, a database of its
own on the throw-away PostgreSQL cluster that `DBCERTS_TEST_POSTGRES_URL` names (scripts/test
runs the suite both ways). Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sqlite3
import tempfile
import urllib.parse
import uuid

import pytest
import requests
from requests.auth import HTTPDigestAuth

import pg_cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
V2 = "application/vnd.atlas.2023-01-01+json"
BACKEND = os.environ.get("DBCERTS_TEST_BACKEND", "sqlite")
assert BACKEND in ("sqlite", "postgres"), BACKEND


# Every secret the run hands out (bootstrap private keys, service-account secrets, access
# tokens, issued certificates' private keys) and every server log it writes. At the end of
# the session the logs of the whole run are searched for the secrets (pytest_sessionfinish).
SECRETS: set[str] = set()
SERVER_LOGS: list[pathlib.Path] = []


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "dates: what the test checks depends on the date or time of day it runs at (month lengths, "
        "leap days, year ends, expiry windows); scripts/test runs these once more on another date "
        "under libfaketime (scripts/at-date), scripts/reliability calendar runs everything so",
    )


def remember_secret(secret: str) -> str:
    SECRETS.add(secret)
    return secret


def remember_private_key(pem: str) -> None:
    """Remembers the base64 lines of a PEM's PRIVATE KEY block (each one is key material)."""
    block = pem.split("-----BEGIN PRIVATE KEY-----", 1)[-1].split("-----END PRIVATE KEY-----", 1)[0]
    for line in block.split():
        if len(line) >= 40:
            SECRETS.add(line)


def pytest_sessionfinish(session, exitstatus):
    leaks = []
    for log in SERVER_LOGS:
        if not log.exists():
            continue
        text = log.read_text(errors="replace")
        leaks += [f"{log}: {s[:8]}..." for s in SECRETS if s in text]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaks:
        if reporter:
            reporter.write_line(f"SECRETS FOUND IN SERVER LOGS ({len(leaks)}):", red=True)
            for leak in leaks:
                reporter.write_line(f"  {leak}", red=True)
        session.exitstatus = 1
    elif reporter and SECRETS:
        reporter.write_line(
            f"secrets check: none of {len(SECRETS)} secrets handed out appears in {len(SERVER_LOGS)} server logs"
        )


def new_database_url() -> str | None:
    """A new database on the test cluster when the run is on PostgreSQL, else None."""
    if BACKEND != "postgres":
        return None
    admin = os.environ["DBCERTS_TEST_POSTGRES_URL"]
    password = urllib.parse.urlsplit(admin).password
    if password:
        # The database password is a secret like the others: no log may show it.
        remember_secret(urllib.parse.unquote(password))
    return pg_cluster.create_database(admin, f"blackbox_{uuid.uuid4().hex[:16]}")


def dbcerts_bin() -> str:
    path = os.environ.get("DBCERTS_BIN") or str(ROOT / "target" / "debug" / "dbcerts")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "-p", "dbcerts"], cwd=ROOT, check=True)
    return path


class Server:
    """A running `dbcerts serve` and the bootstrap credentials it wrote."""

    def __init__(self, data_dir: pathlib.Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        if "--database-url" in extra_args:
            self.database_url = extra_args[extra_args.index("--database-url") + 1]
        else:
            self.database_url = new_database_url()
            if self.database_url:
                extra_args = (*extra_args, "--database-url", self.database_url)
        # What the operator commands (`audit`, `apikey`, `ca export`, ...) need to open the
        # same store as this server.
        self.store_args = ["--data-dir", str(data_dir)]
        if self.database_url:
            self.store_args += ["--database-url", self.database_url]
        self.args = [
            dbcerts_bin(),
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            *(() if "--metrics-listen" in extra_args else ("--metrics-listen", "127.0.0.1:0")),
            *extra_args,
        ]
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        env = dict(os.environ, DBCERTS_LOG=os.environ.get("DBCERTS_LOG", "info"))
        self.log_path = self.data_dir / "server.log"
        SERVER_LOGS.append(self.log_path)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.log, env=env)
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}\n{self.log_path.read_text()}")
        self.root = line.strip().rsplit(" ", 1)[-1]
        self.host_port = self.root.split("://", 1)[1]  # http:// or, with --tls-cert, https://
        # The second line names the metrics listener: "dbcerts metrics on http://ADDR/metrics".
        line = self.proc.stdout.readline().decode()
        if "metrics on" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not announce its metrics listener: {line!r}")
        self.metrics_url = line.strip().rsplit(" ", 1)[-1]
        creds = json.loads((self.data_dir / "bootstrap-credentials.json").read_text())
        self.org_id = creds["orgId"]
        self.public_key = creds["publicKey"]
        self.private_key = remember_secret(creds["privateKey"])
        self.auth = HTTPDigestAuth(self.public_key, self.private_key)
        self.session = requests.Session()
        self.session.auth = self.auth

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code

    # ---- convenience over the real API (requests + HTTPDigestAuth) ----
    def url(self, path: str, version: str = "v2") -> str:
        return f"{self.root}/api/atlas/{version}{path}"

    def call(self, method: str, path: str, *, version: str = "v2", accept: str | None = V2, **kw):
        headers = kw.pop("headers", {})
        if accept is not None and version == "v2":
            headers.setdefault("Accept", accept)
        return self.session.request(method, self.url(path, version), headers=headers, timeout=60, **kw)

    def create_project(self, name: str | None = None) -> str:
        name = name or f"p-{uuid.uuid4().hex[:12]}"
        r = self.call("POST", "/groups", json={"name": name, "orgId": self.org_id})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def create_user(self, group_id: str, username: str, x509_type: str = "MANAGED", **fields) -> dict:
        body = {
            "databaseName": "$external" if x509_type != "NONE" else "admin",
            "username": username,
            "x509Type": x509_type,
            "roles": [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}],
            "groupId": group_id,
            **fields,
        }
        r = self.call("POST", f"/groups/{group_id}/databaseUsers", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def create_cert(self, group_id: str, username: str, months: int = 3) -> str:
        r = self.call(
            "POST",
            f"/groups/{group_id}/databaseUsers/{username}/certs",
            json={"monthsUntilExpiration": months},
        )
        assert r.status_code == 201, r.text
        remember_private_key(r.text)
        return r.text

    def export_ca(self, group_id: str) -> str:
        out = subprocess.run(
            [dbcerts_bin(), "ca", "export", "--project", group_id, *self.store_args],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout

    # ---- the store underneath, for tests that inspect or tamper with it ----
    def sql(self, statement: str, *params) -> list[tuple]:
        """Runs one SQL statement directly on the server's database; returns the rows."""
        if self.database_url and self.database_url.startswith("postgres"):
            return pg_cluster.query(self.database_url, statement, *params)
        db = sqlite3.connect(self.data_dir / "dbcerts.db")
        try:
            with db:
                return db.execute(statement, params).fetchall()
        finally:
            db.close()

    def database_bytes(self) -> dict[str, bytes]:
        """Everything the database holds, as bytes to scan: the SQLite files (database, WAL,
        shared memory) or a `pg_dump` of the PostgreSQL database."""
        if self.database_url and self.database_url.startswith("postgres"):
            dump = subprocess.run(
                [os.path.join(pg_cluster.bindir(), "pg_dump"), "--no-owner", "-d", self.database_url],
                check=True, capture_output=True,
            ).stdout
            return {"pg_dump": dump}
        return {p.name: p.read_bytes() for p in self.data_dir.glob("dbcerts.db*")}


# The shared fixtures serve hundreds of requests a minute from one address, many of them
# deliberately unauthenticated or with wrong credentials (schemathesis' ignored_auth check,
# the error tests). Atlas's limits would throttle them into 429s, so these servers lift the
# limits; the limits themselves are tested on servers of their own (test_digest_auth.py,
# test_oauth.py), with small figures.
UNTHROTTLED = {
    "rate-limit-certs-per-minute": 1_000_000,
    "rate-limit-database-users-per-minute": 1_000_000,
    "rate-limit-user-security-per-minute": 1_000_000,
    "rate-limit-groups-per-minute": 1_000_000,
    "rate-limit-orgs-per-minute": 1_000_000,
    "oauth-token-requests-per-minute": 1_000_000,
    "auth-failures-before-delay": 1_000_000,
    "auth-failures-before-lockout": 1_000_000,
    "auth-failures-per-address-before-lockout": 1_000_000,
}


def _server(tmp_root: pathlib.Path, *args: str):
    data = pathlib.Path(tempfile.mkdtemp(dir=tmp_root))
    if "--config" not in args:
        config = data.parent / f"{data.name}-unthrottled.toml"
        config.write_text("".join(f"{k} = {v}\n" for k, v in UNTHROTTLED.items()))
        args = (*args, "--config", str(config))
    s = Server(data, *args)
    try:
        yield s
    finally:
        if s.proc and s.proc.poll() is None:
            code = s.stop()
            assert code == 0, f"server exited with {code}; log:\n{s.log_path.read_text()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server issuing ECDSA P-256 keys (fast), for behaviour tests."""
    yield from _server(tmp_path_factory.mktemp("ec"), "--key-algorithm", "ecdsa-p256", "--key-pool-size", "4")


@pytest.fixture(scope="module")
def rsa_server(tmp_path_factory):
    """A server with the Atlas defaults: RSA-4096 keys from a small key pool."""
    yield from _server(tmp_path_factory.mktemp("rsa"), "--key-pool-size", "2")


@pytest.fixture()
def fresh_server(tmp_path):
    """A server of the test's own, for tests that stop or restart it."""
    yield from _server(tmp_path, "--key-algorithm", "ecdsa-p256", "--key-pool-size", "2")


# ---- access control: service accounts, bearer tokens, configs, source addresses ----

SA_V = "application/vnd.atlas.2024-08-05+json"


def toml_config(path: pathlib.Path, **keys) -> pathlib.Path:
    """Writes a dbcerts TOML config; keyword names use `_` for the file's `-`."""
    lines = []
    for k, v in keys.items():
        value = json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
        lines.append(f"{k.replace('_', '-')} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def make_server(tmp_path):
    """Starts servers of the test's own, each with an optional TOML config (kebab-case keys
    given as keyword arguments with `_`), and stops them when the test ends."""
    started: list[Server] = []

    def make(*args: str, **config) -> Server:
        data = pathlib.Path(tempfile.mkdtemp(dir=tmp_path))
        extra = ["--key-algorithm", "ecdsa-p256", "--key-pool-size", "2", *args]
        if config:
            # Next to the data directory, not in it: nothing but the server's files in there.
            extra += ["--config", str(toml_config(data.with_suffix(".toml"), **config))]
        s = Server(data, *extra)
        started.append(s)
        return s

    yield make
    for s in started:
        if s.proc and s.proc.poll() is None:
            code = s.stop()
            assert code == 0, f"server exited with {code}; log:\n{s.log_path.read_text()}"


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Makes every connection from a given local address (e.g. 127.0.0.2)."""

    def __init__(self, source_ip: str, **kw) -> None:
        self.source_ip = source_ip
        super().__init__(**kw)

    def init_poolmanager(self, connections, maxsize, block=False, **kw):
        kw["source_address"] = (self.source_ip, 0)
        super().init_poolmanager(connections, maxsize, block=block, **kw)


def session_from(source_ip: str, auth=None) -> requests.Session:
    """A requests session whose connections come from `source_ip`."""
    s = requests.Session()
    s.mount("http://", SourceAddressAdapter(source_ip))
    s.mount("https://", SourceAddressAdapter(source_ip))
    s.auth = auth
    return s


def create_service_account(server: Server, roles=("ORG_OWNER",), hours: int = 8, name: str | None = None) -> dict:
    """Creates an organization service account as the bootstrap key; returns the 201 body."""
    body = {
        "name": name or f"sa-{uuid.uuid4().hex[:8]}",
        "description": "black-box test account",
        "roles": list(roles),
        "secretExpiresAfterHours": hours,
    }
    r = server.call("POST", f"/orgs/{server.org_id}/serviceAccounts", accept=SA_V, json=body)
    assert r.status_code == 201, r.text
    for secret in r.json()["secrets"]:
        remember_secret(secret["secret"])
    return r.json()


def get_token(server: Server, client_id: str, secret: str, session: requests.Session | None = None) -> str:
    """An access token by the client-credentials grant (Basic client authentication)."""
    r = (session or requests).post(
        f"{server.root}/api/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return remember_secret(r.json()["access_token"])


def bearer_call(server: Server, token: str, method: str, path: str, *, version: str = "v2",
                accept: str | None = V2, session: requests.Session | None = None, **kw):
    """One API call with `Authorization: Bearer`, no Digest."""
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    if accept is not None and version == "v2":
        headers.setdefault("Accept", accept)
    return (session or requests).request(method, server.url(path, version), headers=headers, timeout=60, **kw)
