"""HTTP Digest authentication (RFC 7616) against the real binary: curl and `requests` as stock
clients, hand-computed SHA-256 / -sess responses, replayed and malformed headers, stale-nonce
recovery, failed-attempt throttling and per-endpoint-group rate limits.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import subprocess
import time

import pytest
import requests
from requests.auth import HTTPDigestAuth

from _certs_util import split_pem, unique_user
from conftest import V2, Server, dbcerts_bin, remember_private_key, remember_secret, session_from

REALM = "MMS Public API"
NONCE = re.compile(r'nonce="([^"]+)"')
RATE_LIMITED_KEYS = ["detail", "error", "errorCode", "parameters", "reason"]


def challenge(server, path: str = "/api/atlas/v2/groups") -> requests.Response:
    r = requests.get(f"{server.root}{path}", headers={"Accept": V2}, timeout=30)
    assert r.status_code == 401
    return r


def nonce_of(r: requests.Response) -> str:
    m = NONCE.search(r.headers["WWW-Authenticate"])
    assert m, r.headers
    return m.group(1)


def digest_header(
    method: str,
    uri: str,
    username: str,
    password: str,
    nonce: str,
    *,
    algorithm: str = "MD5",
    nc: int = 1,
    cnonce: str | None = None,
    qop: str | None = "auth",
    realm: str = REALM,
) -> str:
    """An RFC 7616 `Authorization: Digest` value, computed here with hashlib."""
    h = hashlib.sha256 if algorithm.upper().startswith("SHA-256") else hashlib.md5

    def H(s: str) -> str:
        return h(s.encode()).hexdigest()

    cnonce = cnonce or secrets.token_hex(8)
    ncv = f"{nc:08x}"
    ha1 = H(f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = H(f"{ha1}:{nonce}:{cnonce}")
    ha2 = H(f"{method}:{uri}")
    if qop is None:
        response = H(f"{ha1}:{nonce}:{ha2}")  # RFC 2069, no qop
        return (
            f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm={algorithm}'
        )
    response = H(f"{ha1}:{nonce}:{ncv}:{cnonce}:{qop}:{ha2}")
    return (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'algorithm={algorithm}, response="{response}", qop={qop}, nc={ncv}, cnonce="{cnonce}"'
    )


def signed_get(server, uri: str, header: str, session=None) -> requests.Response:
    return (session or requests).get(
        f"{server.root}{uri}", headers={"Authorization": header, "Accept": V2}, timeout=30
    )


def curl_status(*args: str) -> list[str]:
    """The status code of a single curl transfer (`-w '%{http_code}'` among `args`)."""
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def curl_has_rate() -> bool:
    return shutil.which("curl") is not None and "--rate" in subprocess.run(
        ["curl", "--help", "all"], capture_output=True, text=True
    ).stdout


# ------------------------------------------------------------------ stock clients


def test_curl_digest_as_the_server_challenges(server):
    assert 'algorithm=MD5, qop="auth"' in challenge(server).headers["WWW-Authenticate"]
    codes = curl_status(
        "--digest", "--user", f"{server.public_key}:{server.private_key}",
        "--header", f"Accept: {V2}", "-w", "%{http_code}\n",
        f"{server.root}/api/atlas/v2/groups?pretty=true",
    )  # fmt: skip
    assert codes == ["200"]
    # A POST with a body: curl sends the first request without it, then with it.
    name = unique_user("curl")
    out = subprocess.run(
        ["curl", "-sS", "--digest", "--user", f"{server.public_key}:{server.private_key}",
         "--header", f"Accept: {V2}", "--header", "Content-Type: application/json",
         "--data", f'{{"name":"{name}","orgId":"{server.org_id}"}}',
         "-w", "\n%{http_code}", f"{server.root}/api/atlas/v2/groups"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    body, code = out.stdout.rsplit("\n", 1)
    assert code == "201", out.stdout
    assert f'"name":"{name}"' in body


def test_curl_with_a_wrong_key_gets_401(server):
    codes = curl_status(
        "--digest", "--user", f"{server.public_key}:00000000-0000-0000-0000-000000000000",
        "--header", f"Accept: {V2}", "-w", "%{http_code}\n", f"{server.root}/api/atlas/v2/groups",
    )  # fmt: skip
    assert codes == ["401"]


def test_requests_http_digest_auth(server):
    with requests.Session() as s:
        s.auth = HTTPDigestAuth(server.public_key, server.private_key)
        for _ in range(3):  # later requests reuse the nonce with increasing nc
            r = s.get(server.url("/groups"), headers={"Accept": V2}, timeout=30)
            assert r.status_code == 200, r.text
        r = s.post(server.url("/groups"), headers={"Accept": V2}, json={"name": unique_user("rq"), "orgId": server.org_id})
        assert r.status_code == 201, r.text
        r = s.get(server.url("/groups", "v1.0"), timeout=30)
        assert r.status_code == 200, r.text


# ------------------------------------------------------------------ algorithms


@pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"])
def test_hand_computed_digest(server, algorithm):
    uri = "/api/atlas/v2/groups?pretty=true"
    nonce = nonce_of(challenge(server, uri))
    r = signed_get(server, uri, digest_header("GET", uri, server.public_key, server.private_key, nonce, algorithm=algorithm))
    assert r.status_code == 200, r.text
    # The same computation with a wrong key fails.
    nonce = nonce_of(challenge(server, uri))
    bad = digest_header("GET", uri, server.public_key, "wrong-" + server.private_key, nonce, algorithm=algorithm)
    assert signed_get(server, uri, bad).status_code == 401


def test_uri_must_match_the_request(server):
    nonce = nonce_of(challenge(server))
    header = digest_header("GET", "/api/atlas/v2/groups?x=1", server.public_key, server.private_key, nonce)
    assert signed_get(server, "/api/atlas/v2/groups", header).status_code == 401


# ------------------------------------------------------------------ replay, qop


def test_replayed_header_is_refused_with_stale_true(server):
    uri = "/api/atlas/v2/groups"
    nonce = nonce_of(challenge(server))
    header = digest_header("GET", uri, server.public_key, server.private_key, nonce)
    first = signed_get(server, uri, header)
    assert first.status_code == 200, first.text
    again = signed_get(server, uri, header)
    assert again.status_code == 401
    www = again.headers["WWW-Authenticate"]
    assert www.endswith("stale=true"), www
    assert nonce_of(again) != nonce
    # A higher nc with the same nonce is a new request, not a replay.
    nc2 = digest_header("GET", uri, server.public_key, server.private_key, nonce, nc=2)
    assert signed_get(server, uri, nc2).status_code == 200


CERT_BODY = b'{"monthsUntilExpiration": 2}'
CERT_HEADERS = {"Accept": V2, "Content-Type": "application/json"}


def post_cert(server, uri: str, authorization: str | None = None) -> requests.Response:
    """POST .../certs with `CERT_BODY`, with the given raw Authorization header (or none)."""
    headers = {**CERT_HEADERS, **({"Authorization": authorization} if authorization else {})}
    return requests.post(f"{server.root}{uri}", headers=headers, data=CERT_BODY, timeout=60)


def issue_with_captured_header(server, prefix: str) -> tuple[str, str, str, str, str]:
    """A project, a MANAGED user and a certificate for it, issued with a Digest header computed
    here (the raw header a capture off the wire would hold): (group id, user, uri, header,
    nonce), after checking the certificate was issued."""
    gid = server.create_project()
    user = unique_user(prefix)
    server.create_user(gid, user)
    uri = f"/api/atlas/v2/groups/{gid}/databaseUsers/{user}/certs"
    nonce = nonce_of(post_cert(server, uri))
    header = digest_header("POST", uri, server.public_key, server.private_key, nonce)
    issued = post_cert(server, uri, header)
    assert issued.status_code == 201, issued.status_code
    remember_private_key(issued.text)
    return gid, user, uri, header, nonce


def listed_serials(server, gid: str, user: str) -> list[int]:
    r = server.call("GET", f"/groups/{gid}/databaseUsers/{user}/certs")
    assert r.status_code == 200, r.text
    assert r.json()["totalCount"] == len(r.json()["results"])
    return sorted(c["_id"] for c in r.json()["results"])


def test_a_signed_post_replayed_after_a_restart_issues_nothing(fresh_server):
    """A captured `POST .../certs` (the raw Authorization header and its body), sent again
    after the server restarted on the same data: a 401 with a fresh challenge (stale=true, as
    the nonce predates the new process), and no second certificate. A client that held a nonce
    from before the restart recovers through that challenge."""
    s = fresh_server
    gid, user, uri, captured, first_nonce = issue_with_captured_header(s, "replay")
    serials = listed_serials(s, gid, user)
    assert len(serials) == 1
    # The same header before the restart is a replay too (this process remembers its nc).
    assert post_cert(s, uri, captured).status_code == 401

    # A client that keeps its nonce across the restart (requests reuses it with a rising nc).
    keeper = requests.Session()
    keeper.auth = HTTPDigestAuth(s.public_key, s.private_key)
    assert keeper.get(s.url("/groups"), headers={"Accept": V2}, timeout=30).status_code == 200

    assert s.stop() == 0
    s.start()
    replay = post_cert(s, uri, captured)
    # (Not the body in the message: on failure it would hold a private key.)
    assert replay.status_code == 401, f"the replay was answered {replay.status_code}"
    www = replay.headers["WWW-Authenticate"]
    assert www.startswith('Digest realm="MMS Public API"') and 'qop="auth"' in www, www
    assert www.endswith("stale=true"), www
    assert nonce_of(replay) != first_nonce
    assert replay.json()["error"] == 401
    assert listed_serials(s, gid, user) == serials, "the replay issued a certificate"

    # stale=true recovery: the kept nonce is refused once, the fresh one in that 401 works.
    r = keeper.post(s.url(f"/groups/{gid}/databaseUsers/{user}/certs"), headers={"Accept": V2},
                    json={"monthsUntilExpiration": 1}, timeout=60)  # fmt: skip
    assert r.status_code == 201, r.status_code
    remember_private_key(r.text)
    assert [h.status_code for h in r.history] == [401]
    assert r.history[0].headers["WWW-Authenticate"].endswith("stale=true")
    assert listed_serials(s, gid, user) == sorted(serials + [split_pem(r.text).cert.serial_number])
    # Neither the replay nor the kept nonce counted as a failed authentication.
    audit = subprocess.run([dbcerts_bin(), "audit", "list", *s.store_args, "--json"],
                           capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    assert "authentication.failed" not in audit.stdout


def test_with_store_replay_checks_no_node_takes_what_another_took(make_server):
    """Two nodes on one store with `digest-replay-check = "store"`: a signed POST .../certs that
    node A accepted, sent to node B, is a replay there too (401, stale=true, nothing issued);
    the nonce keeps working on either node with the counts that follow."""
    a = make_server(digest_replay_check="store")
    # The same store, database URL and configuration: A's arguments after its --listen.
    b = Server(a.data_dir, *a.args[a.args.index("--listen") + 2:])
    try:
        gid, user, uri, captured, nonce = issue_with_captured_header(a, "xnode")
        serials = listed_serials(a, gid, user)
        replay = post_cert(b, uri, captured)
        assert replay.status_code == 401, f"the replay was answered {replay.status_code}"
        assert replay.headers["WWW-Authenticate"].endswith("stale=true")
        for node in (a, b):
            assert listed_serials(node, gid, user) == serials, "the replay issued a certificate"

        # The nonce, counted on, is good on both nodes; a count already used is not.
        for node, nc, status in ((b, 2, 200), (a, 3, 200), (b, 3, 401), (a, 2, 401)):
            header = digest_header("GET", uri, a.public_key, a.private_key, nonce, nc=nc)
            assert signed_get(node, uri, header).status_code == status, (node.root, nc)
    finally:
        assert b.stop() == 0


@pytest.mark.parametrize("qop", ["auth-int", None], ids=["auth-int", "no-qop"])
def test_qop_other_than_auth_is_refused(server, qop):
    uri = "/api/atlas/v2/groups"
    nonce = nonce_of(challenge(server))
    header = digest_header("GET", uri, server.public_key, server.private_key, nonce, qop=qop)
    r = signed_get(server, uri, header)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].endswith("stale=false")


# ------------------------------------------------------------------ stale nonces


@pytest.fixture()
def short_nonce_server(make_server):
    return make_server(digest_nonce_lifetime_secs=2)


def test_requests_recovers_from_a_stale_nonce(short_nonce_server):
    s = short_nonce_server
    uri = "/api/atlas/v2/groups"
    old_nonce = nonce_of(challenge(s))
    with requests.Session() as sess:
        sess.auth = HTTPDigestAuth(s.public_key, s.private_key)
        first = sess.get(s.url("/groups"), headers={"Accept": V2}, timeout=30)
        assert first.status_code == 200, first.text
        time.sleep(3)
        second = sess.get(s.url("/groups"), headers={"Accept": V2}, timeout=30)
        assert second.status_code == 200, second.text
        # requests answered the server's stale=true with the fresh nonce, once.
        assert [h.status_code for h in second.history] == [401]
        assert second.history[0].headers["WWW-Authenticate"].endswith("stale=true")
    # A correct response over an expired nonce is "stale", not a failure.
    r = signed_get(s, uri, digest_header("GET", uri, s.public_key, s.private_key, old_nonce))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].endswith("stale=true")
    # A wrong key over an expired nonce is a plain failure.
    r = signed_get(s, uri, digest_header("GET", uri, s.public_key, "nope", old_nonce))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].endswith("stale=false")


@pytest.mark.skipif(not curl_has_rate(), reason="the installed curl has no --rate option (curl < 7.84)")
def test_curl_across_a_nonce_expiry(short_nonce_server):
    """Two transfers 3 s apart with a 2 s nonce lifetime both succeed. (curl 7.88 answers a
    fresh challenge for each transfer rather than reusing the nonce; if a curl does reuse it,
    the second transfer exercises stale=true and must still end in 200.)"""
    s = short_nonce_server
    url = s.url("/groups")
    started = time.monotonic()
    out = subprocess.run(
        ["curl", "-sS", "-v", "--digest", "-u", f"{s.public_key}:{s.private_key}", "--header", f"Accept: {V2}",
         "--rate", "20/m",  # one transfer every 3 s (curl 7.88 has no "1/3s")
         "-w", "%{http_code}\n", "-o", "/dev/null", url, "-o", "/dev/null", url + "?pretty=true"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started >= 2.5, "curl did not wait between the transfers"
    assert out.stdout.split() == ["200", "200"], out.stderr
    statuses = re.findall(r"^< HTTP/1.1 (\d{3})", out.stderr, re.M)
    assert statuses[-1] == "200" and statuses.count("200") == 2, statuses


# ------------------------------------------------------------------ failed attempts


def create_key(server, roles=("ORG_READ_ONLY",)) -> HTTPDigestAuth:
    """A new organization API key's Digest credentials (created by the bootstrap key)."""
    r = server.call("POST", f"/orgs/{server.org_id}/apiKeys", json={"desc": "second key", "roles": list(roles)})
    assert r.status_code == 200, r.text
    return HTTPDigestAuth(r.json()["publicKey"], remember_secret(r.json()["privateKey"]))


def get_groups(auth=None, source: str | None = None, server=None) -> requests.Response:
    with session_from(source or "127.0.0.1", auth) as sess:
        return sess.get(server.url("/groups"), headers={"Accept": V2}, timeout=30)


def assert_locked_out(r: requests.Response, limit: int, minutes: int, lockout_secs: int) -> None:
    assert r.status_code == 429, r.text
    body = r.json()
    assert sorted(body) == RATE_LIMITED_KEYS
    full = "/api/atlas/v2/groups"
    assert body == {
        "detail": f"Resource {full} is limited to {limit} requests every {minutes} minutes.",
        "error": 429,
        "errorCode": "RATE_LIMITED",
        "parameters": [full, limit, minutes],
        "reason": "Too Many Requests",
    }
    assert 1 <= int(r.headers["Retry-After"]) <= lockout_secs


def test_failed_attempts_are_slowed_then_locked_out(make_server):
    s = make_server(auth_failures_before_delay=2, auth_failures_before_lockout=5, auth_lockout_secs=60)
    other_key = create_key(s)
    uri = "/api/atlas/v2/groups"
    durations = []
    # auth-failures-before-lockout = 5: the fifth failure is still answered 401 (and locks the
    # key out from this address); from then on, requests with that key get 429.
    for attempt in range(1, 6):
        nonce = nonce_of(challenge(s))
        header = digest_header("GET", uri, s.public_key, "wrong-password", nonce)
        started = time.monotonic()
        r = signed_get(s, uri, header)
        durations.append(time.monotonic() - started)
        assert r.status_code == 401, f"attempt {attempt}: {r.status_code} {r.text}"
    # Past the second failure each answer is held back 100 ms more. Noise only ever adds time,
    # so compare the fastest delayed answer with the fastest undelayed one.
    for n, d in enumerate(durations[2:], start=3):
        assert d >= 0.1 * (n - 2), f"failure {n} took {d:.3f}s: {durations}"
    assert min(durations[2:]) - min(durations[:2]) >= 0.08, durations

    # Five failures: the key is refused from this address, with wrong or correct credentials.
    r = get_groups(HTTPDigestAuth(s.public_key, "wrong-password"), server=s)
    assert_locked_out(r, 5, 5, 60)
    assert r.headers["X-Error-Code"] == "RATE_LIMITED"
    r = s.session.get(s.url("/groups"), headers={"Accept": V2}, timeout=30)
    assert_locked_out(r, 5, 5, 60)
    # The address itself is not: no credentials get the ordinary challenge, and another key's
    # valid credentials from the same address get in.
    assert_challenge_401(requests.get(s.url("/groups"), headers={"Accept": V2}, timeout=30))
    r = get_groups(other_key, server=s)
    assert r.status_code == 200, r.text
    # Another address is not locked out, even with the locked key.
    r = get_groups(HTTPDigestAuth(s.public_key, s.private_key), source="127.0.0.2", server=s)
    assert r.status_code == 200, r.text


def assert_challenge_401(r: requests.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith(f'Digest realm="{REALM}"')


def test_wrong_passwords_for_one_key_do_not_lock_out_another_from_the_same_address(make_server):
    """Issue 15, item 6: 130 wrong passwords for key A from one address (behind a NAT, say) lock
    out key A from that address, and only key A: key B's valid credentials from the same address
    still get in. The thresholds are the defaults (100 failures per key and address in 5
    minutes, 1,000 per address); only the slow-down is lifted, to keep the test short."""
    s = make_server(auth_failures_before_delay=1_000_000)
    key_b = create_key(s)
    uri = "/api/atlas/v2/groups"
    statuses = []
    with requests.Session() as sess:
        nonce = nonce_of(challenge(s))
        for _ in range(130):
            header = digest_header("GET", uri, s.public_key, "wrong-password", nonce)
            r = sess.get(f"{s.root}{uri}", headers={"Authorization": header, "Accept": V2}, timeout=30)
            statuses.append(r.status_code)
            if r.status_code == 401:
                nonce = nonce_of(r)
    assert statuses == [401] * 100 + [429] * 30, statuses
    assert_locked_out(r, 100, 5, 600)
    # Key A is locked from this address, valid credentials or not.
    assert_locked_out(get_groups(HTTPDigestAuth(s.public_key, s.private_key), server=s), 100, 5, 600)
    # Key B from the same address: in.
    r = get_groups(key_b, server=s)
    assert r.status_code == 200, r.text


def test_spraying_many_keys_from_one_address_locks_the_address(make_server):
    """One wrong guess each for many keys never reaches the per-key threshold; the looser
    per-address ceiling (`auth-failures-per-address-before-lockout`) stops it, and then the
    whole address is refused, whatever it presents. Other addresses are not."""
    s = make_server(
        auth_failures_before_delay=1_000_000,
        auth_failures_before_lockout=5,
        auth_failures_per_address_before_lockout=12,
        auth_lockout_secs=60,
    )
    key_b = create_key(s)
    uri = "/api/atlas/v2/groups"
    statuses = []
    nonce = nonce_of(challenge(s))
    for i in range(14):
        # Made-up public keys (eight lowercase letters, like real ones) and wrong passwords.
        sprayed = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))
        r = signed_get(s, uri, digest_header("GET", uri, sprayed, "guess", nonce))
        statuses.append(r.status_code)
        if r.status_code == 401:
            nonce = nonce_of(r)
        if i == 0:
            # The first failures lock nobody: key B still gets in.
            assert get_groups(key_b, server=s).status_code == 200
    assert statuses == [401] * 12 + [429] * 2, statuses
    for auth in (key_b, HTTPDigestAuth(s.public_key, s.private_key), None):
        assert_locked_out(get_groups(auth, server=s), 12, 5, 60)
    r = get_groups(key_b, source="127.0.0.2", server=s)
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------ rate limits


def test_certs_rate_limit(make_server):
    s = make_server(rate_limit_certs_per_minute=3)
    gid = s.create_project()
    user = unique_user("rl")
    s.create_user(gid, user)
    path = f"/groups/{gid}/databaseUsers/{user}/certs"
    full = f"/api/atlas/v2{path}"
    remaining = []
    for method in ("POST", "GET", "POST"):
        kw = {"json": {"monthsUntilExpiration": 1}} if method == "POST" else {}
        r = s.call(method, path, **kw)
        assert r.status_code in (200, 201), r.text
        if method == "POST":
            split_pem(r.text)
        assert r.headers["Ratelimit-Limit"] == "3"
        remaining.append(int(r.headers["Ratelimit-Remaining"]))
    assert remaining == [2, 1, 0]

    r = s.call("GET", path)
    assert r.status_code == 429, r.text
    body = r.json()
    assert sorted(body) == RATE_LIMITED_KEYS
    assert body == {
        "detail": f"Resource {full} is limited to 3 requests every 1 minutes.",
        "error": 429,
        "errorCode": "RATE_LIMITED",
        "parameters": [full, 3, 1],
        "reason": "Too Many Requests",
    }
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.headers["X-Error-Code"] == "RATE_LIMITED"

    # Other endpoint groups are counted separately.
    r = s.call("GET", "/groups")
    assert r.status_code == 200, r.text
    assert r.headers["Ratelimit-Limit"] == "1200"
    r = s.call("GET", f"/groups/{gid}/databaseUsers/$external/{user}")
    assert r.status_code == 200, r.text
    assert r.headers["Ratelimit-Limit"] == "10000"

    # Another caller has a bucket of its own.
    r = s.call("POST", f"/orgs/{s.org_id}/apiKeys", json={"desc": "second caller", "roles": ["ORG_OWNER"]})
    assert r.status_code == 200, r.text
    key = r.json()
    with requests.Session() as other:
        other.auth = HTTPDigestAuth(key["publicKey"], key["privateKey"])
        r = other.get(s.url(path), headers={"Accept": V2}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Ratelimit-Remaining"] == "2"
