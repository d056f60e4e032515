"""Several `dbcerts serve` processes on one PostgreSQL database, and one node riding out a
PostgreSQL outage. Real binaries, real sockets, real PostgreSQL; nothing mocked.

- Two nodes share a fresh database: eight client threads issue certificates for the same few
  users through both nodes alternately. Every serial is distinct, every certificate is listed
  by both nodes, all chain to the one project CA, and a Digest nonce one node hands out is
  accepted by the other (they share the nonce key through the store).
- Two nodes started at the same instant on an empty database bootstrap it exactly once.
- A node on a private cluster whose PostgreSQL is stopped for five seconds under load answers
  every request within a bound, with a success or a well-formed Atlas 503; its readiness check
  says so; it recovers by itself when PostgreSQL is back, has lost no certificate it handed out,
  and still exits cleanly on SIGTERM.

Needs `DBCERTS_TEST_POSTGRES_URL` (a superuser URL; scripts/test sets it).
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import secrets
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest
import requests
from requests.auth import HTTPDigestAuth

import pg_cluster
from _certs_util import openssl, split_pem, unique_user
from conftest import SERVER_LOGS, UNTHROTTLED, V2, dbcerts_bin, remember_private_key, remember_secret

from conftest import BACKEND

# The suite runs twice (SQLite, then PostgreSQL); these tests need one backend, so they run once.

# How long /health/ready reuses an answer (crates/dbcerts-server/src/observe.rs READY_CACHE), plus
# a margin.
READY_CACHE = 1.2
pytestmark = pytest.mark.skipif(BACKEND == "sqlite", reason="multi-node tests run in the PostgreSQL pass of the suite")

REALM = "MMS Public API"
ATLAS_ERROR_KEYS = {"detail", "error", "errorCode", "parameters", "reason"}
# AtlasError::unavailable (crates/dbcerts-server/src/error.rs): what a store outage answers.
UNAVAILABLE = {"detail": "Unexpected error.", "error": 503, "errorCode": "UNEXPECTED_ERROR",
               "parameters": [], "reason": "Service Unavailable"}


@pytest.fixture(scope="module")
def admin_url() -> str:
    url = os.environ.get("DBCERTS_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI is set but DBCERTS_TEST_POSTGRES_URL is not: the multi-node tests need PostgreSQL")
        pytest.skip("DBCERTS_TEST_POSTGRES_URL is not set (run under scripts/test or pg_cluster.py run --)")
    remember_url_password(url)
    return url


def remember_url_password(url: str) -> None:
    password = urllib.parse.urlsplit(url).password
    if password:
        remember_secret(urllib.parse.unquote(password))


@pytest.fixture()
def new_database(admin_url):
    """Creates fresh databases on the test cluster; drops them when the test is over (after
    the `nodes` fixture, requested later, has stopped the nodes using them)."""
    names: list[str] = []

    def create() -> str:
        name = f"nodes_{uuid.uuid4().hex[:16]}"
        names.append(name)
        return pg_cluster.create_database(admin_url, name)

    yield create
    for name in names:
        pg_cluster.query(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------ one node


class Node:
    """One `dbcerts serve` process on a PostgreSQL database, with a data directory of its own."""

    def __init__(self, name: str, data_dir: pathlib.Path, database_url: str, *extra: str) -> None:
        self.name = name
        self.data_dir = data_dir
        self.database_url = database_url
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        config = data_dir.parent / f"{data_dir.name}-unthrottled.toml"
        config.write_text("".join(f"{k} = {v}\n" for k, v in UNTHROTTLED.items()))
        self.extra = list(extra)
        self.args = [
            dbcerts_bin(), "serve",
            "--data-dir", str(data_dir),
            "--database-url", database_url,
            "--listen", "127.0.0.1:0",
            "--metrics-listen", "127.0.0.1:0",
            "--key-algorithm", "ecdsa-p256",
            "--key-pool-size", "4",
            "--config", str(config),
            *extra,
        ]
        self.proc: subprocess.Popen | None = None
        self.root = ""
        self.auth: HTTPDigestAuth | None = None

    def launch(self) -> None:
        """Starts the process without waiting for it."""
        self.log_path = self.data_dir / "server.log"
        SERVER_LOGS.append(self.log_path)
        self.log = open(self.log_path, "ab")
        env = dict(os.environ, DBCERTS_LOG=os.environ.get("DBCERTS_LOG", "info"))
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.log, env=env)

    def wait_listening(self) -> None:
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"{self.name} did not start: {line!r}\n{self.log_path.read_text()}")
        self.root = line.strip().rsplit(" ", 1)[-1]

    def start(self) -> "Node":
        self.launch()
        self.wait_listening()
        return self

    def use_credentials(self, creds_file: pathlib.Path) -> None:
        creds = json.loads(creds_file.read_text())
        self.org_id = creds["orgId"]
        self.public_key = creds["publicKey"]
        self.private_key = remember_secret(creds["privateKey"])
        self.auth = HTTPDigestAuth(self.public_key, self.private_key)

    @property
    def store_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), "--database-url", self.database_url, *self.extra]

    def url(self, path: str) -> str:
        return f"{self.root}/api/atlas/v2{path}"

    def session(self) -> requests.Session:
        s = requests.Session()
        s.auth = HTTPDigestAuth(self.public_key, self.private_key)
        s.headers["Accept"] = V2
        return s

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code


@pytest.fixture()
def nodes():
    """Nodes of the test's own; any still running at the end are stopped and must exit 0."""
    started: list[Node] = []

    def make(*args, **kw) -> Node:
        n = Node(*args, **kw)
        started.append(n)
        return n

    yield make
    bad = []
    for n in started:
        if n.alive():
            code = n.stop()
            if code != 0:
                bad.append(f"{n.name} exited with {code}; log:\n{n.log_path.read_text()}")
    assert not bad, "\n".join(bad)


def two_nodes(nodes, url: str, tmp_path: pathlib.Path) -> tuple[Node, Node]:
    """Nodes A and B started on the database at `url`: B with A's master key, both using the
    credentials A bootstrapped."""
    a = nodes("A", tmp_path / "a", url).start()
    a.use_credentials(a.data_dir / "bootstrap-credentials.json")
    b = nodes("B", tmp_path / "b", url, "--master-key-file", str(a.data_dir / "master.key")).start()
    b.use_credentials(a.data_dir / "bootstrap-credentials.json")
    return a, b


def write_master_key(path: pathlib.Path) -> pathlib.Path:
    """A master key file as `dbcerts serve` writes one: base64 of 32 random bytes, mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return path


def create_project(node: Node, session: requests.Session) -> str:
    r = session.post(node.url("/groups"), json={"name": f"p-{uuid.uuid4().hex[:12]}", "orgId": node.org_id}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def create_user(node: Node, session: requests.Session, gid: str, username: str) -> None:
    body = {
        "databaseName": "$external",
        "username": username,
        "x509Type": "MANAGED",
        "roles": [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}],
        "groupId": gid,
    }
    r = session.post(node.url(f"/groups/{gid}/databaseUsers"), json=body, timeout=60)
    assert r.status_code == 201, r.text


def list_serials(node: Node, session: requests.Session, gid: str, user: str, per_page: int = 7) -> list[int]:
    """Every certificate the node lists for `user`, paging through with `itemsPerPage`."""
    serials: list[int] = []
    total = None
    page = 1
    while True:
        r = session.get(
            node.url(f"/groups/{gid}/databaseUsers/{user}/certs"),
            params={"itemsPerPage": per_page, "pageNum": page},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        total = body["totalCount"] if total is None else total
        assert body["totalCount"] == total, "totalCount changed between pages"
        if not body["results"]:
            break
        assert len(body["results"]) <= per_page
        serials += [c["_id"] for c in body["results"]]
        page += 1
    assert len(serials) == total, (len(serials), total)
    assert len(set(serials)) == len(serials), "a certificate appeared on two pages"
    return serials


def digest_authorization(method: str, uri: str, username: str, password: str, nonce: str, opaque: str | None) -> str:
    """RFC 7616 MD5 Digest with qop=auth, nc=00000001, computed here with hashlib."""

    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()

    cnonce = secrets.token_hex(8)
    ha1 = md5(f"{username}:{REALM}:{password}")
    ha2 = md5(f"{method}:{uri}")
    response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
    header = (
        f'Digest username="{username}", realm="{REALM}", nonce="{nonce}", uri="{uri}", '
        f'algorithm=MD5, response="{response}", qop=auth, nc=00000001, cnonce="{cnonce}"'
    )
    if opaque is not None:
        header += f', opaque="{opaque}"'
    return header


# ------------------------------------------------------------------ two nodes, one database


def test_two_nodes_issue_concurrently_into_one_store(new_database, nodes, tmp_path):
    url = new_database()
    a = nodes("A", tmp_path / "a", url).start()
    a.use_credentials(a.data_dir / "bootstrap-credentials.json")
    # Node B shares A's master key; the database is bootstrapped already, so B writes no
    # credentials and is used with A's.
    b = nodes("B", tmp_path / "b", url, "--master-key-file", str(a.data_dir / "master.key")).start()
    assert not (b.data_dir / "bootstrap-credentials.json").exists()
    assert not (b.data_dir / "master.key").exists()
    b.use_credentials(a.data_dir / "bootstrap-credentials.json")
    both = [a, b]

    sa, sb = a.session(), b.session()
    gid = create_project(a, sa)
    users = [unique_user("mn") for _ in range(3)]
    for i, u in enumerate(users):
        create_user(both[i % 2], (sa, sb)[i % 2], gid, u)

    threads, per_thread = 8, 6
    issued: list[tuple[str, str, str]] = []  # (node, user, PEM)
    failures: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(threads)

    def client(t: int) -> None:
        sessions = [n.session() for n in both]
        go.wait()
        for i in range(per_thread):
            k = (t + i) % 2
            user = users[(t + i) % len(users)]
            try:
                r = sessions[k].post(
                    both[k].url(f"/groups/{gid}/databaseUsers/{user}/certs"),
                    json={"monthsUntilExpiration": 1},
                    timeout=60,
                )
            except requests.RequestException as e:
                with lock:
                    failures.append(f"{both[k].name} thread {t}: {e!r}")
                continue
            with lock:
                if r.status_code == 201:
                    remember_private_key(r.text)
                    issued.append((both[k].name, user, r.text))
                else:
                    failures.append(f"{both[k].name} thread {t}: {r.status_code} {r.text}")

    workers = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not any(w.is_alive() for w in workers), "a client thread hung"
    assert not failures, failures
    assert len(issued) == threads * per_thread
    assert collections.Counter(n for n, _, _ in issued) == {"A": 24, "B": 24}

    # Distinct serials (parsed by pyca/cryptography, Atlas PEM layout checked).
    pems = [(node, user, split_pem(text)) for node, user, text in issued]
    serials = [p.cert.serial_number for _, _, p in pems]
    assert len(set(serials)) == len(serials), "duplicate serials"
    for _, user, p in pems:
        assert p.cert.subject.rfc4514_string() == f"CN={user}"

    # Both nodes list every certificate, page by page.
    for user in users:
        want = sorted(p.cert.serial_number for _, u, p in pems if u == user)
        assert sorted(list_serials(a, sa, gid, user)) == want
        assert sorted(list_serials(b, sb, gid, user)) == want

    # One project CA, whichever node's data directory the operator exports it from.
    ca_pem = subprocess.run(
        [dbcerts_bin(), "ca", "export", "--project", gid, *a.store_args],
        check=True, capture_output=True, text=True,
    ).stdout
    ca_pem_b = subprocess.run(
        [dbcerts_bin(), "ca", "export", "--project", gid, *b.store_args],
        check=True, capture_output=True, text=True,
    ).stdout
    assert ca_pem.startswith("-----BEGIN CERTIFICATE-----\n") and ca_pem.count("BEGIN CERTIFICATE") == 1
    assert ca_pem_b == ca_pem
    for n, s in ((a, sa), (b, sb)):
        r = s.get(f"{n.root}/api/dbcerts/v1/groups/{gid}/ca", timeout=60)
        assert r.status_code == 200, r.text
        assert r.text == ca_pem
    ca_file = tmp_path / "project-ca.pem"
    ca_file.write_text(ca_pem)
    leaves = []
    for i, (_, _, p) in enumerate(pems):
        leaf = tmp_path / f"leaf-{i}.pem"
        leaf.write_bytes(p.cert_pem)
        leaves.append(leaf)
    out = openssl("verify", "-purpose", "sslclient", "-CAfile", str(ca_file), *map(str, leaves))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [f"{leaf}: OK" for leaf in leaves]

    # A nonce from one node is good on the other, both ways.
    for first, second in ((a, b), (b, a)):
        path = f"/api/atlas/v2/groups/{gid}"
        challenge = requests.get(f"{first.root}{path}", headers={"Accept": V2}, timeout=30)
        assert challenge.status_code == 401
        www = challenge.headers["WWW-Authenticate"]
        nonce = re.search(r'nonce="([^"]+)"', www).group(1)
        opaque = re.search(r'opaque="([^"]*)"', www)
        header = digest_authorization("GET", path, a.public_key, a.private_key, nonce, opaque and opaque.group(1))
        r = requests.get(f"{second.root}{path}", headers={"Accept": V2, "Authorization": header}, timeout=30)
        assert r.status_code == 200, f"nonce from {first.name} refused by {second.name}: {r.status_code} {r.text}"
        assert r.json()["id"] == gid


def test_a_restarted_node_refuses_what_it_accepted_and_takes_the_other_nodes_nonces(new_database, nodes, tmp_path):
    """Node A accepts a signed POST .../certs; A restarts; the captured header sent to A again
    gets a 401 with stale=true and issues nothing. Nonces keep crossing nodes both ways after
    the restart, and a client holding a nonce of A's previous run recovers through stale=true."""
    a, b = two_nodes(nodes, new_database(), tmp_path)
    sa = a.session()
    gid = create_project(a, sa)
    user = unique_user("rs")
    create_user(a, sa, gid, user)
    path = f"/api/atlas/v2/groups/{gid}/databaseUsers/{user}/certs"
    body = b'{"monthsUntilExpiration": 1}'
    headers = {"Accept": V2, "Content-Type": "application/json"}

    def nonce_from(node: Node, method: str = "GET") -> str:
        r = requests.request(method, f"{node.root}{path}", headers=headers, timeout=30)
        assert r.status_code == 401
        return re.search(r'nonce="([^"]+)"', r.headers["WWW-Authenticate"]).group(1)

    captured = digest_authorization("POST", path, a.public_key, a.private_key, nonce_from(a, "POST"), None)
    r = requests.post(f"{a.root}{path}", headers={**headers, "Authorization": captured}, data=body, timeout=60)
    assert r.status_code == 201, r.status_code
    remember_private_key(r.text)
    serials = list_serials(b, b.session(), gid, user)
    assert len(serials) == 1
    keeper = a.session()  # requests keeps the nonce and counts nc up
    assert keeper.get(a.url(f"/groups/{gid}"), timeout=30).status_code == 200

    assert a.stop() == 0
    a.start()
    replay = requests.post(f"{a.root}{path}", headers={**headers, "Authorization": captured}, data=body, timeout=60)
    assert replay.status_code == 401, f"the replay was answered {replay.status_code}"
    assert replay.headers["WWW-Authenticate"].endswith("stale=true"), replay.headers
    assert list_serials(b, b.session(), gid, user) == serials, "the replay issued a certificate"

    # Nonces still cross nodes, both ways, after the restart.
    for first, second in ((b, a), (a, b)):
        header = digest_authorization("GET", path, a.public_key, a.private_key, nonce_from(first), None)
        r = requests.get(f"{second.root}{path}", headers={"Accept": V2, "Authorization": header}, timeout=30)
        assert r.status_code == 200, f"nonce from {first.name} refused by {second.name}: {r.status_code} {r.text}"
        assert [c["_id"] for c in r.json()["results"]] == serials

    # The kept nonce is from A's previous run: one stale=true, then the fresh nonce works.
    r = keeper.get(a.url(f"/groups/{gid}"), timeout=30)
    assert r.status_code == 200, r.text
    assert [h.status_code for h in r.history] == [401]
    assert r.history[0].headers["WWW-Authenticate"].endswith("stale=true")


def test_nodes_started_at_once_on_an_empty_database_bootstrap_it_once(new_database, nodes, tmp_path):
    key = write_master_key(tmp_path / "shared-master.key")
    for attempt in range(3):
        url = new_database()
        pair = [
            nodes(f"{name}{attempt}", tmp_path / f"{name}{attempt}", url, "--master-key-file", str(key))
            for name in ("A", "B")
        ]
        for n in pair:
            n.launch()
        for n in pair:
            n.wait_listening()

        orgs = pg_cluster.query(url, "SELECT id FROM organizations")
        assert len(orgs) == 1, f"attempt {attempt}: {len(orgs)} organizations"
        creds = [n.data_dir / "bootstrap-credentials.json" for n in pair if (n.data_dir / "bootstrap-credentials.json").exists()]
        assert len(creds) == 1, f"attempt {attempt}: credentials files {creds}"
        for n in pair:
            assert not (n.data_dir / ".bootstrap-credentials.json.tmp").exists()
            assert not (n.data_dir / "master.key").exists()
        [creds_file] = creds
        assert stat_mode(creds_file) == 0o600
        assert json.loads(creds_file.read_text())["orgId"] == orgs[0][0]
        assert len(pg_cluster.query(url, "SELECT id FROM api_keys")) == 1
        # The one set of credentials works on both nodes.
        for n in pair:
            n.use_credentials(creds_file)
            assert n.org_id == orgs[0][0]
            r = n.session().get(n.url(f"/orgs/{n.org_id}/apiKeys"), timeout=60)
            assert r.status_code == 200, r.text
            assert [k["publicKey"] for k in r.json()["results"]] == [n.public_key]
        for n in pair:
            assert n.stop() == 0


def stat_mode(path: pathlib.Path) -> int:
    return path.stat().st_mode & 0o777


# ------------------------------------------------------------------ PostgreSQL goes away


@dataclasses.dataclass
class Outcome:
    kind: str  # "issue" or "list"
    user: str
    started: float
    finished: float
    status: int | None
    text: str
    retry_after: str | None
    error: str | None = None

    @property
    def elapsed(self) -> float:
        return self.finished - self.started


def test_node_rides_out_a_postgresql_outage(admin_url, nodes, tmp_path):
    del admin_url  # a private cluster of its own; the fixture only decides skip or fail
    cluster = pg_cluster.PgCluster()
    try:
        remember_secret(cluster.password)
        url = pg_cluster.create_database(cluster.url(), "dbcerts")
        node = nodes("solo", tmp_path / "solo", url).start()
        node.use_credentials(node.data_dir / "bootstrap-credentials.json")
        setup = node.session()
        gid = create_project(node, setup)
        users = [unique_user("ft") for _ in range(2)]
        for u in users:
            create_user(node, setup, gid, u)

        outcomes: list[Outcome] = []
        health: list[tuple[float, float, str, int | None, bytes]] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(t: int) -> None:
            s = node.session()
            i = 0
            while not stop.is_set():
                user = users[(t + i) % len(users)]
                kind = "issue" if i % 2 == 0 else "list"
                i += 1
                started = time.monotonic()
                try:
                    if kind == "issue":
                        r = s.post(node.url(f"/groups/{gid}/databaseUsers/{user}/certs"),
                                   json={"monthsUntilExpiration": 1}, timeout=15)
                    else:
                        r = s.get(node.url(f"/groups/{gid}/databaseUsers/{user}/certs"),
                                  params={"itemsPerPage": 500}, timeout=15)
                    o = Outcome(kind, user, started, time.monotonic(), r.status_code, r.text, r.headers.get("Retry-After"))
                    if kind == "issue" and r.status_code == 201:
                        remember_private_key(r.text)
                except requests.RequestException as e:
                    o = Outcome(kind, user, started, time.monotonic(), None, "", None, repr(e))
                with lock:
                    outcomes.append(o)
                time.sleep(0.05)

        def prober() -> None:
            while not stop.is_set():
                for path in ("/health/live", "/health/ready"):
                    started = time.monotonic()
                    try:
                        r = requests.get(f"{node.root}{path}", timeout=15)
                        sample = (started, time.monotonic(), path, r.status_code, r.content)
                    except requests.RequestException as e:
                        sample = (started, time.monotonic(), path, None, repr(e).encode())
                    with lock:
                        health.append(sample)
                time.sleep(0.2)

        workers = [threading.Thread(target=client, args=(t,)) for t in range(3)] + [threading.Thread(target=prober)]
        for w in workers:
            w.start()
        try:
            time.sleep(1.5)
            down_from = time.monotonic()
            cluster.stop("fast")
            down = time.monotonic()  # PostgreSQL has stopped (pg_ctl -w)
            # While it stays down (this thread decides when it comes back): a certificate
            # request and a list answer 503 within the bound, readiness says unavailable,
            # liveness ok.
            def timed(method: str, url: str, session=requests, **kw):
                t0 = time.monotonic()
                r = session.request(method, url, timeout=15, **kw)
                return r, time.monotonic() - t0

            certs_url = node.url(f"/groups/{gid}/databaseUsers/{users[0]}/certs")
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                probes = [
                    pool.submit(timed, "POST", certs_url, node.session(), json={"monthsUntilExpiration": 1}),
                    pool.submit(timed, "GET", certs_url, node.session()),
                    # Readiness reuses its answer for up to READY_CACHE seconds (so that probes
                    # cannot drain the pool): ask once that has passed.
                    pool.submit(lambda: (time.sleep(READY_CACHE), timed("GET", f"{node.root}/health/ready"))[1]),
                    pool.submit(timed, "GET", f"{node.root}/health/live"),
                ]
                (post_down, post_took), (list_down, list_took), (ready_down, ready_took), (live_down, _) = (
                    f.result() for f in probes
                )
            outage = [("POST", post_down, post_took), ("GET", list_down, list_took)]
            time.sleep(max(0.0, down + 5 - time.monotonic()))
            up_from = time.monotonic()
            cluster.start()
            up = time.monotonic()  # PostgreSQL accepts connections again (pg_ctl -w)
            # Keep the load on until the node has issued a few certificates on its own again.
            deadline = up + 30
            while time.monotonic() < deadline:
                with lock:
                    recovered = sum(1 for o in outcomes if o.kind == "issue" and o.status == 201 and o.started > up)
                if recovered >= 3:
                    break
                time.sleep(0.2)
            time.sleep(0.5)
        finally:
            stop.set()
            for w in workers:
                w.join(60)
        assert not any(w.is_alive() for w in workers), "a client thread hung"

        # Every request finished, in time, with a success or a well-formed Atlas error.
        problems = []
        for o in outcomes:
            at = f"{o.kind} at {o.started - down_from:+.2f}s (took {o.elapsed:.2f}s)"
            if o.error:
                problems.append(f"{at}: no response: {o.error}")
                continue
            if o.elapsed >= 10:
                problems.append(f"{at}: too slow")
            if o.status == (201 if o.kind == "issue" else 200):
                continue
            try:
                body = json.loads(o.text)
            except ValueError:
                problems.append(f"{at}: {o.status} with a body that is not JSON: {o.text[:200]!r}")
                continue
            if not isinstance(body, dict) or set(body) != ATLAS_ERROR_KEYS or body.get("error") != o.status:
                problems.append(f"{at}: {o.status} with a body that is not an Atlas error: {o.text[:300]}")
                continue
            # The only failure a PostgreSQL outage may cause is "unavailable, retry".
            if o.status != 503:
                problems.append(f"{at}: {o.status} {o.text[:300]}")
                continue
            if not (o.finished > down_from and o.started < up):
                problems.append(f"{at}: 503 outside the outage ({o.text[:200]})")
            if body != UNAVAILABLE:
                problems.append(f"{at}: unexpected 503 body {body}")
            if o.retry_after != "1":
                problems.append(f"{at}: 503 without Retry-After: 1")
        assert not problems, "\n".join(problems)

        for method, r, took in outage:
            assert r.status_code == 503, (method, r.status_code, r.text)
            assert (r.json(), r.headers.get("Retry-After")) == (UNAVAILABLE, "1"), (method, r.text, r.headers)
            assert took < 10, (method, took)
        assert (ready_down.status_code, ready_down.content) == (503, b'{"status":"unavailable"}')
        assert ready_took < 10
        assert (live_down.status_code, live_down.content) == (200, b'{"status":"ok"}')
        during = [o for o in outcomes if o.started >= down and o.finished <= up_from]
        assert all(o.status == 503 for o in during), [(o.kind, o.status) for o in during]
        before = [o for o in outcomes if o.finished < down_from]
        after = [o for o in outcomes if o.started > up]
        assert any(o.kind == "issue" and o.status == 201 for o in before)
        assert sum(o.kind == "issue" and o.status == 201 for o in after) >= 3, "the node did not recover by itself"
        assert any(o.kind == "list" and o.status == 200 for o in after)

        # Health: live throughout; ready 503 while stopped, 200 once back.
        for started, finished, path, status, content in health:
            at = f"{path} at {started - down_from:+.2f}s"
            assert finished - started < 10, f"{at} took {finished - started:.2f}s"
            if path == "/health/live":
                assert (status, content) == (200, b'{"status":"ok"}'), (at, status, content)
            elif started >= down + READY_CACHE and finished <= up_from:
                assert (status, content) == (503, b'{"status":"unavailable"}'), (at, status, content)
            else:
                assert (status, content) in ((200, b'{"status":"ok"}'), (503, b'{"status":"unavailable"}')), (at, status, content)
        time.sleep(READY_CACHE)
        ready = requests.get(f"{node.root}/health/ready", timeout=15)
        assert (ready.status_code, ready.content) == (200, b'{"status":"ok"}')

        # Every certificate a client received is listed afterwards.
        received = collections.defaultdict(set)
        for o in outcomes:
            if o.kind == "issue" and o.status == 201:
                received[o.user].add(split_pem(o.text).cert.serial_number)
        for user in users:
            listed = set(list_serials(node, setup, gid, user, per_page=50))
            missing = received[user] - listed
            assert not missing, f"{len(missing)} certificates handed out to {user} are not listed: {sorted(missing)}"

        assert node.alive(), f"the node died; log:\n{node.log_path.read_text()}"
        assert node.stop() == 0
    finally:
        cluster.remove()
