"""The per-node read cache (docs/ARCHITECTURE.md, "Read cache") on the real binary.

- One node, either backend: repeated requests are answered from the cache (its hit counter on
  /metrics rises), and what the node itself changes (a key deleted, a grant removed, a project
  deleted) takes effect on its very next request. `cache-ttl-seconds = 0` turns it off.
  Issuing OAuth tokens (each records its secret's use) keeps the account and the keys cached.
- Two nodes on one PostgreSQL database: B answers from its cache, then a key deleted on A, a
  project grant removed on A, a database user deleted on A (B then refuses its certificates)
  and a project deleted on A are all refused by B within the bound (B's `cache-ttl-seconds`),
  polled with that bound as the deadline; B's cache was emptied by PostgreSQL's notifications.
- Two nodes on PostgreSQL, "create on A, use on B at once": B keeps unknown public keys and
  client ids as absent (a second probe of a made-up one is a hit), yet every key and service
  account created on A is accepted by B on its very next request, in a loop with B probing a
  new made-up id before each creation (ids are chosen by the server, at random, so a cached
  absent entry can only be for an id probed before it existed).
- Two nodes on PostgreSQL: tokens issued on either node make A's database notify nothing (B
  empties no principal part on a notification, checked behind a fence: a project created on
  A and B told of it), while a secret deleted on A does.
- B's listener hung (its PostgreSQL backend stopped with SIGSTOP: the connection stays open and
  delivers nothing, as behind a pooler in transaction mode or a silent partition): B's probe
  does not come back, B says so and bypasses its cache; once the backend resumes, B trusts its
  cache again.
- B's LISTEN connection killed (`pg_terminate_backend`, found in pg_stat_activity by its
  application name): a key deleted while B cannot hear of it is refused by B on its next
  request, although B cached it with a TTL of five minutes; once B listens again, it caches
  again.
- B's cache still holding a MANAGED user that A deleted (B's listener backend stopped, so B
  trusts its cache for its TTL): B's certificate request is refused by the store, with the
  USERNAME_NOT_FOUND a fresh read gives, and with USER_NOT_MANAGED_X509 once A has made the
  name a SCRAM user; no valid certificate of the user is left.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import string
import time

import pg_cluster
import pytest
import requests
from _certs_util import unique_user
from conftest import BACKEND, SA_V, V2, create_service_account, get_token, remember_secret
from requests.auth import HTTPDigestAuth
from test_many_nodes import (  # noqa: F401 (fixtures)
    Node,
    admin_url,
    create_project,
    create_user,
    new_database,
    nodes,
)
from test_operations import Scrape

HITS = "dbcerts_cache_hits_total"
EVICTIONS = "dbcerts_cache_evictions_total"
LISTENER_APPLICATION = "dbcerts-cache-listener"  # dbcerts_store::CHANGE_LISTENER_APPLICATION


def scrape(metrics_url: str) -> Scrape:
    r = requests.get(metrics_url, timeout=30)
    assert r.status_code == 200, r.text
    return Scrape(r.text)


def hits(metrics_url: str, part: str) -> float:
    return scrape(metrics_url).get(HITS, part=part) or 0


def digest(public_key: str, private_key: str) -> requests.Session:
    s = requests.Session()
    s.auth = HTTPDigestAuth(public_key, remember_secret(private_key))
    s.headers["Accept"] = V2
    return s


def until(deadline_s: float, what: str, check) -> float:
    """Calls `check()` until it is true, for at most `deadline_s` seconds (the bound being
    asserted); returns the seconds it took."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > deadline_s:
            pytest.fail(f"{what}: not within the bound of {deadline_s} s")
        time.sleep(0.05)


# ------------------------------------------------------------------ one node, either backend


def cache_ready(server) -> None:
    """On PostgreSQL, waits until the server trusts its cache: its change listener is in place
    and its first probe has come back (it logs that). On SQLite the cache is ready at once."""
    if BACKEND == "postgres":
        until(
            60,
            "the cache listener is trusted",
            lambda: "read cache: listening for changes" in server.log_path.read_text(errors="replace"),
        )


def test_one_node_answers_from_its_cache_and_its_own_writes_take_effect_at_once(make_server):
    # A long TTL (probes every 30 s): nothing here may depend on an entry's age.
    s = make_server(cache_ttl_seconds=60)
    cache_ready(s)
    gid = s.create_project()
    r = s.call("POST", f"/orgs/{s.org_id}/apiKeys", json={"desc": "cached", "roles": ["ORG_MEMBER"]})
    assert r.status_code == 200, r.text
    key = r.json()
    k = digest(key["publicKey"], key["privateKey"])
    r = s.call("POST", f"/groups/{gid}/apiKeys/{key['id']}", json=[{"roles": ["GROUP_READ_ONLY"]}])
    assert r.status_code == 204, r.text

    before = hits(s.metrics_url, "api_key"), hits(s.metrics_url, "project")
    for _ in range(3):
        assert k.get(s.url(f"/groups/{gid}"), timeout=30).status_code == 200
    after = hits(s.metrics_url, "api_key"), hits(s.metrics_url, "project")
    assert after[0] >= before[0] + 2 and after[1] >= before[1] + 2, (before, after)

    # The grant removed: the key no longer sees the project, on its very next request.
    assert s.call("DELETE", f"/groups/{gid}/apiKeys/{key['id']}").status_code == 204
    r = k.get(s.url(f"/groups/{gid}"), timeout=30)
    assert r.status_code == 404 and r.json()["errorCode"] == "GROUP_NOT_FOUND", r.text
    # The project deleted: gone for its owner at once.
    assert s.call("GET", f"/groups/{gid}").status_code == 200
    assert s.call("DELETE", f"/groups/{gid}").status_code == 202
    assert s.call("GET", f"/groups/{gid}").status_code == 404
    # The key deleted: refused at once.
    assert k.get(s.url("/groups"), timeout=30).status_code == 200
    assert s.call("DELETE", f"/orgs/{s.org_id}/apiKeys/{key['id']}").status_code == 204
    assert k.get(s.url("/groups"), timeout=30).status_code == 401


def test_a_ttl_of_zero_turns_the_cache_off(make_server):
    s = make_server(cache_ttl_seconds=0)
    for _ in range(3):
        assert s.call("GET", "/groups").status_code == 200
    assert scrape(s.metrics_url).get(HITS, part="api_key") is None


def test_issuing_tokens_keeps_the_account_cached(make_server):
    # Each token records its secret's use (last_used): not an input of authentication, so it
    # drops nothing from the cache (before, every token emptied the principal parts, and on
    # SQLite raised the cache version, emptying everything).
    s = make_server(cache_ttl_seconds=60)
    cache_ready(s)
    earlier = notified(s.metrics_url, "service_account")
    account = create_service_account(s)
    client, secret = account["clientId"], account["secrets"][0]["secret"]
    if BACKEND == "postgres":
        # The account's creation is also notified to this node: let that drop come first.
        until(60, "the creation's notification", lambda: notified(s.metrics_url, "service_account") > earlier)
    get_token(s, client, secret)
    before = hits(s.metrics_url, "service_account"), hits(s.metrics_url, "api_key")
    assert s.call("GET", "/groups").status_code == 200
    for _ in range(4):
        get_token(s, client, secret)
    assert s.call("GET", "/groups").status_code == 200
    after = hits(s.metrics_url, "service_account"), hits(s.metrics_url, "api_key")
    assert after[0] >= before[0] + 4 and after[1] >= before[1] + 1, (before, after)
    # And the use is recorded.
    r = s.call("GET", f"/orgs/{s.org_id}/serviceAccounts/{client}", accept=SA_V)
    assert r.status_code == 200, r.text
    assert r.json()["secrets"][0]["lastUsedAt"], r.text


# ------------------------------------------------------------------ two nodes, PostgreSQL


def metrics_url(node: Node) -> str:
    """The node's metrics URL: the second line `dbcerts serve` prints."""
    if not hasattr(node, "metrics_url"):
        line = node.proc.stdout.readline().decode()
        assert "metrics on" in line, line
        node.metrics_url = line.strip().rsplit(" ", 1)[-1]
    return node.metrics_url


def log_count(node: Node, text: str) -> int:
    return node.log_path.read_text(errors="replace").count(text)


def listening(node: Node, times: int = 1) -> None:
    """Waits until the node's change listener has connected `times` times (it logs each)."""
    until(60, f"{node.name}'s cache listener connects", lambda: log_count(node, "read cache: listening for changes") >= times)


def listener_pids(admin_url: str, database_url: str) -> list[int]:
    database = database_url.rsplit("/", 1)[-1].split("?", 1)[0]
    rows = pg_cluster.query(
        admin_url,
        "SELECT pid FROM pg_stat_activity WHERE application_name = ? AND datname = ?",
        LISTENER_APPLICATION,
        database,
    )
    return [int(pid) for (pid,) in rows]


def two_cached_nodes(nodes, url: str, tmp_path: pathlib.Path, ttl_b: int, cache_a: bool = True) -> tuple[Node, Node]:
    a = nodes("A", tmp_path / "a", url, *(() if cache_a else ("--cache-ttl-seconds", "0"))).start()
    a.use_credentials(a.data_dir / "bootstrap-credentials.json")
    b = nodes(
        "B", tmp_path / "b", url, "--master-key-file", str(a.data_dir / "master.key"), "--cache-ttl-seconds", str(ttl_b)
    ).start()
    b.use_credentials(a.data_dir / "bootstrap-credentials.json")
    listening(b)
    return a, b


def notified(metrics: str, part: str) -> float:
    """How many times the node emptied `part` on a notification."""
    return scrape(metrics).get(EVICTIONS, part=part, cause="notification") or 0


def new_org_account(a: Node, sa: requests.Session) -> tuple[str, str]:
    """A new organization service account, created on `a`: its client id and secret."""
    body = {"name": f"sa-{random.randrange(10**9)}", "description": "cache", "roles": ["ORG_MEMBER"], "secretExpiresAfterHours": 8}
    r = sa.post(a.url(f"/orgs/{a.org_id}/serviceAccounts"), json=body, headers={"Accept": SA_V}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()["clientId"], remember_secret(r.json()["secrets"][0]["secret"])


def new_org_key(a: Node, sa: requests.Session) -> dict:
    r = sa.post(a.url(f"/orgs/{a.org_id}/apiKeys"), json={"desc": "cache", "roles": ["ORG_MEMBER"]}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def cert_request(node: Node, session: requests.Session, gid: str, user: str) -> requests.Response:
    return session.post(
        node.url(f"/groups/{gid}/databaseUsers/{user}/certs"), json={"monthsUntilExpiration": 1}, timeout=60
    )


@pytest.mark.skipif(BACKEND == "sqlite", reason="multi-node tests run in the PostgreSQL pass of the suite")
def test_changes_on_node_a_are_refused_on_node_b_within_the_bound(new_database, nodes, tmp_path):
    bound = 30  # B's cache-ttl-seconds: the longest B may serve what A changed
    a, b = two_cached_nodes(nodes, new_database(), tmp_path, ttl_b=bound)
    sa, sb = a.session(), b.session()
    mb = metrics_url(b)
    gid = create_project(a, sa)
    user = unique_user("cache")
    create_user(a, sa, gid, user)
    key = new_org_key(a, sa)
    r = sa.post(a.url(f"/groups/{gid}/apiKeys/{key['id']}"), json=[{"roles": ["GROUP_OWNER"]}], timeout=60)
    assert r.status_code == 204, r.text
    k = digest(key["publicKey"], key["privateKey"])
    notified_before = sum(v for (n, _), v in scrape(mb).samples.items() if n == EVICTIONS and ("cause", "notification") in _)

    # B answers from its cache: the key, the project and the user.
    before = {p: hits(mb, p) for p in ("api_key", "project", "database_user")}
    for _ in range(3):
        assert k.get(b.url(f"/groups/{gid}"), timeout=60).status_code == 200
        assert cert_request(b, k, gid, user).status_code == 201
    after = {p: hits(mb, p) for p in before}
    assert all(after[p] >= before[p] + 2 for p in before), (before, after)

    # A removes the key's grant: B stops showing it the project.
    assert sa.delete(a.url(f"/groups/{gid}/apiKeys/{key['id']}"), timeout=60).status_code == 204
    took = until(bound, "removed grant refused on B", lambda: k.get(b.url(f"/groups/{gid}"), timeout=60).status_code == 404)
    print(f"grant removal seen on B after {took:.3f} s")

    # A deletes the database user: B refuses its certificates.
    assert cert_request(b, sb, gid, user).status_code == 201
    assert sa.delete(a.url(f"/groups/{gid}/databaseUsers/%24external/{user}"), timeout=60).status_code == 204

    def user_refused() -> bool:
        r = cert_request(b, sb, gid, user)
        assert r.status_code in (201, 404), r.text
        return r.status_code == 404 and r.json()["errorCode"] == "USERNAME_NOT_FOUND"

    took = until(bound, "deleted user's certificate refused on B", user_refused)
    print(f"user deletion seen on B after {took:.3f} s")

    # A deletes the project: B answers GROUP_NOT_FOUND.
    assert sb.get(b.url(f"/groups/{gid}"), timeout=60).status_code == 200
    r = sa.delete(a.url(f"/groups/{gid}"), timeout=60)
    assert r.status_code == 202, r.text
    took = until(bound, "deleted project refused on B", lambda: sb.get(b.url(f"/groups/{gid}"), timeout=60).status_code == 404)
    print(f"project deletion seen on B after {took:.3f} s")

    # A deletes the key: B refuses it.
    assert k.get(b.url("/groups"), timeout=60).status_code == 200
    assert k.get(b.url("/groups"), timeout=60).status_code == 200
    assert sa.delete(a.url(f"/orgs/{a.org_id}/apiKeys/{key['id']}"), timeout=60).status_code == 204
    took = until(bound, "deleted key refused on B", lambda: k.get(b.url("/groups"), timeout=60).status_code == 401)
    print(f"key deletion seen on B after {took:.3f} s")

    # What emptied B's cache were PostgreSQL's notifications of A's writes.
    notified = sum(v for (n, labels), v in scrape(mb).samples.items() if n == EVICTIONS and ("cause", "notification") in labels)
    assert notified > notified_before, (notified_before, notified)


@pytest.mark.skipif(BACKEND == "sqlite", reason="multi-node tests run in the PostgreSQL pass of the suite")
def test_node_b_without_its_listener_still_refuses_a_key_deleted_meanwhile(admin_url, new_database, nodes, tmp_path):
    url = new_database()
    # A without a cache, so that the only listener on this database is B's.
    a, b = two_cached_nodes(nodes, url, tmp_path, ttl_b=300, cache_a=False)
    sa = a.session()
    mb = metrics_url(b)
    key = new_org_key(a, sa)
    k = digest(key["publicKey"], key["privateKey"])
    before = hits(mb, "api_key")
    for _ in range(3):
        assert k.get(b.url("/groups"), timeout=60).status_code == 200
    assert hits(mb, "api_key") >= before + 2, "B answered the key from its cache"

    [pid] = listener_pids(admin_url, url)
    # Waits (up to 10 s) until the backend has exited: nothing A commits from now on can be
    # notified to that connection.
    assert pg_cluster.query(admin_url, "SELECT pg_terminate_backend(?, 10000)", pid) == [("t",)]
    until(60, "B notices its listener is gone", lambda: log_count(b, "read cache: change listener lost") >= 1)
    assert sa.delete(a.url(f"/orgs/{a.org_id}/apiKeys/{key['id']}"), timeout=60).status_code == 204
    # Cached for up to five minutes, deleted where B could not hear of it: refused all the same.
    r = k.get(b.url("/groups"), timeout=60)
    assert r.status_code == 401, r.text

    # B listens again (a new connection) and caches again.
    listening(b, times=2)
    assert listener_pids(admin_url, url) not in ([], [pid])
    other = new_org_key(a, sa)
    o = digest(other["publicKey"], other["privateKey"])
    before = hits(mb, "api_key")
    for _ in range(3):
        assert o.get(b.url("/groups"), timeout=60).status_code == 200
    assert hits(mb, "api_key") >= before + 2
    assert k.get(b.url("/groups"), timeout=60).status_code == 401


@pytest.mark.skipif(BACKEND == "sqlite", reason="multi-node tests run in the PostgreSQL pass of the suite")
def test_a_stale_cache_on_node_b_never_issues_a_certificate_for_a_user_deleted_on_a(
    admin_url, new_database, nodes, tmp_path
):
    """B holds a MANAGED user in its cache and hears nothing of A's writes (its listener's
    backend is stopped: a silent partition, so B keeps trusting its cache for its whole TTL).
    A deletes the user (revoking its certificates), then replaces it with a SCRAM user of the
    same name. B, still reading the old user from its cache, signs, but the store refuses to
    record the certificate, and B answers what a fresh read would have made it answer."""
    url = new_database()
    # A without a cache, so that the only listener on this database is B's.
    a, b = two_cached_nodes(nodes, url, tmp_path, ttl_b=300, cache_a=False)
    sa, sb = a.session(), b.session()
    mb = metrics_url(b)
    gid = create_project(a, sa)
    user = unique_user("stale")
    create_user(a, sa, gid, user)

    def issued_from_cache() -> bool:
        before = hits(mb, "database_user")
        r = cert_request(b, sb, gid, user)
        assert r.status_code == 201, r.text
        return hits(mb, "database_user") > before

    # B caches the user (a notification of the user's creation may still empty it once).
    until(60, "B issues from its cached user", issued_from_cache)
    [pid] = listener_pids(admin_url, url)
    os.kill(pid, signal.SIGSTOP)
    try:
        assert issued_from_cache(), "B still answers the user from its cache"
        issued_before = pg_cluster.query(
            url, "SELECT COUNT(*) FROM certificates WHERE project_id = ? AND username = ?", gid, user
        )

        # A deletes the user (and revokes its certificates); B's cache still holds it.
        assert sa.delete(a.url(f"/groups/{gid}/databaseUsers/%24external/{user}"), timeout=60).status_code == 204
        before = hits(mb, "database_user")
        r = cert_request(b, sb, gid, user)
        assert hits(mb, "database_user") > before, "B read the deleted user from its cache"
        # (Cut short: a 201's body would end with the certificate's private key.)
        assert r.status_code == 404, f"{r.status_code}: {r.text[:120]}"
        assert r.json() == {
            "detail": f"No user with username {user} exists.",
            "error": 404,
            "errorCode": "USERNAME_NOT_FOUND",
            "parameters": [user],
            "reason": "Not Found",
        }
        assert r.json() == cert_request(a, sa, gid, user).json(), "A (reading the store) answers the same"

        # A creates a SCRAM user of the same name: B, still reading the MANAGED one, is refused
        # as a fresh read would refuse it.
        password = f"pw-{unique_user()}"
        remember_secret(password)
        scram = {
            "databaseName": "admin",
            "username": user,
            "password": password,
            "roles": [{"databaseName": "admin", "roleName": "read"}],
            "groupId": gid,
        }
        r = sa.post(a.url(f"/groups/{gid}/databaseUsers"), json=scram, timeout=60)
        assert r.status_code == 201, r.text
        before = hits(mb, "database_user")
        r = cert_request(b, sb, gid, user)
        assert hits(mb, "database_user") > before, "B read the MANAGED user from its cache"
        assert r.status_code == 400, f"{r.status_code}: {r.text[:120]}"
        assert r.json()["errorCode"] == "USER_NOT_MANAGED_X509"
        assert r.json() == cert_request(a, sa, gid, user).json(), "A (reading the store) answers the same"
    finally:
        os.kill(pid, signal.SIGCONT)

    # Nothing was recorded after the deletion, and every certificate of the user is revoked.
    assert pg_cluster.query(
        url, "SELECT COUNT(*) FROM certificates WHERE project_id = ? AND username = ?", gid, user
    ) == issued_before
    assert pg_cluster.query(
        url,
        "SELECT COUNT(*) FROM certificates WHERE project_id = ? AND username = ? AND revoked_at IS NULL",
        gid,
        user,
    ) == [("0",)]
    # Listed through A once the name is a MANAGED user again: no valid certificate.
    assert sa.delete(a.url(f"/groups/{gid}/databaseUsers/admin/{user}"), timeout=60).status_code == 204
    create_user(a, sa, gid, user)
    r = sa.get(a.url(f"/groups/{gid}/databaseUsers/{user}/certs"), timeout=60)
    assert r.status_code == 200, r.text
    assert (r.json()["totalCount"], r.json()["results"]) == (0, [])


def token_status(node: Node, client_id: str, secret: str) -> int:
    r = requests.post(
        f"{node.root}/api/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
        headers={"Accept": "application/json"},
        timeout=60,
    )
    assert r.status_code in (200, 401), r.text
    return r.status_code


def probe(node: Node, public_key: str) -> int:
    """A Digest request to `node` for `public_key` with a wrong private key (not a secret, so not
    remembered as one)."""
    r = requests.get(
        node.url("/groups"), auth=HTTPDigestAuth(public_key, "not-the-private-key"), headers={"Accept": V2}, timeout=60
    )
    assert r.status_code in (200, 401), r.text
    return r.status_code


def made_up_public_key() -> str:
    """A public key's shape (eight lowercase letters) that no key is likely to have."""
    return "".join(random.choices(string.ascii_lowercase, k=8))


def made_up_client_id() -> str:
    return "mdb_sa_id_" + "".join(random.choices("0123456789abcdef", k=24))


@pytest.mark.skipif(BACKEND == "sqlite", reason="multi-node tests run in the PostgreSQL pass of the suite")
def test_a_key_created_on_node_a_is_accepted_on_node_b_at_once(new_database, nodes, tmp_path):
    # B keeps entries for five minutes: only the notification of A's creation can drop them.
    a, b = two_cached_nodes(nodes, new_database(), tmp_path, ttl_b=300)
    sa = a.session()
    mb = metrics_url(b)

    # B keeps a made-up public key and client id as absent: the second probe is a hit.
    before = {p: hits(mb, p) for p in ("unknown_api_key", "unknown_service_account")}
    pk, client = made_up_public_key(), made_up_client_id()
    for _ in range(2):
        assert probe(b, pk) == 401
        assert token_status(b, client, "mdb_sa_sk_" + "0" * 40) == 401
    after = {p: hits(mb, p) for p in before}
    assert all(after[p] >= before[p] + 1 for p in before), (before, after)

    for i in range(15):
        # B caches a new absent entry of each kind, then A creates a key and an account, which
        # B must accept on its very next request.
        for _ in range(2):
            assert probe(b, made_up_public_key()) == 401
            assert token_status(b, made_up_client_id(), "mdb_sa_sk_" + "0" * 40) == 401
        key = new_org_key(a, sa)
        r = digest(key["publicKey"], key["privateKey"]).get(b.url("/groups"), timeout=60)
        assert r.status_code == 200, f"round {i}: key {key['publicKey']} created on A refused on B: {r.text}"
        client, secret = new_org_account(a, sa)
        assert token_status(b, client, secret) == 200, f"round {i}: account {client} created on A refused on B"


@pytest.mark.skipif(BACKEND == "sqlite", reason="multi-node tests run in the PostgreSQL pass of the suite")
def test_tokens_issued_on_node_a_notify_nothing_and_a_deleted_secret_does(new_database, nodes, tmp_path):
    a, b = two_cached_nodes(nodes, new_database(), tmp_path, ttl_b=300)
    sa = a.session()
    mb = metrics_url(b)
    base = a.url(f"/orgs/{a.org_id}/serviceAccounts")
    client, secret = new_org_account(a, sa)
    r = sa.post(f"{base}/{client}/secrets", json={"secretExpiresAfterHours": 8}, headers={"Accept": SA_V}, timeout=60)
    assert r.status_code == 201, r.text
    remember_secret(r.json()["secret"])
    spare = r.json()["id"]

    def fence() -> None:
        """A project created on A, and B told of it: PostgreSQL delivers notifications in
        commit order, so B has then handled every notification of what A committed before."""
        before = notified(mb, "project")
        create_project(a, sa)
        until(60, "B hears of a project created on A", lambda: notified(mb, "project") > before)

    fence()
    before = notified(mb, "service_account")
    for node in (a, b, a, b):
        assert token_status(node, client, secret) == 200
    fence()
    assert notified(mb, "service_account") == before, "issuing tokens notified a change"

    # Deleting a secret still notifies.
    r = sa.delete(f"{base}/{client}/secrets/{spare}", headers={"Accept": SA_V}, timeout=60)
    assert r.status_code == 204, r.text
    fence()
    assert notified(mb, "service_account") > before


@pytest.mark.skipif(BACKEND == "sqlite", reason="multi-node tests run in the PostgreSQL pass of the suite")
def test_node_b_bypasses_its_cache_while_its_listener_delivers_nothing(admin_url, new_database, nodes, tmp_path):
    url = new_database()
    # B probes its listener every half TTL (2 s here).
    a, b = two_cached_nodes(nodes, url, tmp_path, ttl_b=4, cache_a=False)
    mb = metrics_url(b)
    sb = b.session()

    def hit_count() -> float:
        return hits(mb, "api_key")

    before = hit_count()
    for _ in range(3):
        assert sb.get(b.url("/groups"), timeout=60).status_code == 200
    assert hit_count() >= before + 2, "B answers from its cache"

    [pid] = listener_pids(admin_url, url)
    missed = "read cache: a probe of the change listener did not come back"
    # Counted from here: a slow probe before the stop may already have logged a miss and a
    # recovery (a loaded machine), which must not satisfy the waits below.
    missed_before = log_count(b, missed)
    trusted_before = log_count(b, "read cache: listening for changes")
    os.kill(pid, signal.SIGSTOP)
    try:
        until(30, "B notices that its probe did not come back", lambda: log_count(b, missed) > missed_before)
        before = hit_count()
        for _ in range(3):
            assert sb.get(b.url("/groups"), timeout=60).status_code == 200
        assert hit_count() == before, "B bypasses its cache while its listener is silent"
    finally:
        os.kill(pid, signal.SIGCONT)
    # The backend resumes and delivers what was queued, probes included: B trusts again.
    listening(b, times=trusted_before + 1)
    before = hit_count()
    for _ in range(3):
        assert sb.get(b.url("/groups"), timeout=60).status_code == 200
    assert hit_count() >= before + 2
