"""Real third-party clients against the real server: the Atlas docs' curl commands (run through
bash, verbatim except for host, credentials and ids) and Python `requests` with HTTPDigestAuth.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from requests.auth import HTTPDigestAuth

from _certs_util import (
    assert_validity,
    atlas_date,
    curl,
    jackson_pretty,
    now_utc,
    parse_atlas_date,
    split_pem,
    unique_user,
)
from conftest import V2

V2_CT = "application/vnd.atlas.2023-01-01+json;charset=utf-8"
CHALLENGE = re.compile(
    r'^Digest realm="MMS Public API", domain="", nonce="([^"\s]{32})", algorithm=MD5, qop="auth", stale=false$'
)
UNAUTHORIZED_BODY = {
    "error": 401,
    "reason": "Unauthorized",
    "detail": "You are not authorized for this resource.",
    "errorCode": "UNEXPECTED_ERROR",
}
CERT_KEYS = ["_id", "createdAt", "groupId", "notAfter", "subject"]


@pytest.fixture(scope="module")
def project(server):
    """A project with one MANAGED user; returns (groupId, username)."""
    gid = server.create_project()
    user = unique_user("alice")
    server.create_user(gid, user)
    return gid, user


def _fresh_user(server, gid: str) -> str:
    user = unique_user()
    server.create_user(gid, user)
    return user


def _list(server, gid: str, user: str) -> dict:
    r = server.call("GET", f"/groups/{gid}/databaseUsers/{user}/certs")
    assert r.status_code == 200, r.text
    return r.json()


def _assert_cert_item(item: dict, gid: str, user: str) -> None:
    assert list(item) == CERT_KEYS, item  # no links, no monthsUntilExpiration; sorted keys
    assert type(item["_id"]) is int and 0 < item["_id"] < 2**63
    assert item["groupId"] == gid
    assert item["subject"] == f"CN={user}"
    parse_atlas_date(item["createdAt"])
    parse_atlas_date(item["notAfter"])


# ------------------------------------------------------------------ curl, Atlas docs, v2


def test_curl_docs_list_certs_pretty(server, project, tmp_path):
    gid, _ = project
    user = _fresh_user(server, gid)
    pems = [split_pem(server.create_cert(gid, user)) for _ in range(2)]
    host = server.host_port

    r = curl(
        f'curl --digest --user "{server.public_key}:{server.private_key}" '
        f'--header "Accept: application/vnd.atlas.2023-01-01+json" '
        f'-X GET "http://{host}/api/atlas/v2/groups/{gid}/databaseUsers/{user}/certs?pretty=true"',
        tmp_path,
    )
    assert r.all_statuses == [401, 200], r  # a Digest challenge, then the answer
    assert r.headers["content-type"] == V2_CT
    doc = json.loads(r.body)
    # Jackson's default pretty printer: `"key" : value`, two-space indent, inline arrays.
    assert r.body in (jackson_pretty(doc), jackson_pretty(doc) + "\n"), r.body
    assert r.body.startswith('{\n  "links" : [ {\n    "href" : "http://'), r.body
    assert list(doc) == ["links", "results", "totalCount"]
    # The link echoes what the request gave, then the observed includeCount and the paging.
    assert doc["links"] == [
        {
            "href": f"http://{host}/api/atlas/v2/groups/{gid}/databaseUsers/{user}/certs"
            "?pretty=true&includeCount=true&pageNum=1&itemsPerPage=100",
            "rel": "self",
        }
    ]
    assert doc["totalCount"] == 2
    assert len(doc["results"]) == 2
    for item in doc["results"]:
        _assert_cert_item(item, gid, user)
    assert sorted(i["_id"] for i in doc["results"]) == sorted(p.cert.serial_number for p in pems)
    # _id is a bare JSON integer in the text, not a string or a float.
    for p in pems:
        assert f'"_id" : {p.cert.serial_number},' in r.body


def test_curl_docs_create_cert(server, project, tmp_path):
    gid, user = project
    before = now_utc()
    r = curl(
        f'curl --digest --user "{server.public_key}:{server.private_key}" '
        f'--header "Accept: application/vnd.atlas.2023-01-01+json" '
        f'--header "Content-Type: application/json" '
        f'-X POST "http://{server.host_port}/api/atlas/v2/groups/{gid}/databaseUsers/{user}/certs" '
        f"--data '{{\"monthsUntilExpiration\":3}}'",
        tmp_path,
    )
    after = now_utc()
    assert r.all_statuses == [401, 201], r
    assert r.headers["content-type"] == V2_CT
    # Raw PEM, not a JSON string: CERTIFICATE then unencrypted PKCS#8 PRIVATE KEY, LF, final LF.
    assert r.body.startswith("-----BEGIN CERTIFICATE-----\n")
    assert r.body.endswith("-----END PRIVATE KEY-----\n")
    assert r.body.count("-----BEGIN ") == 2
    assert "\r" not in r.body and "\n\n" not in r.body
    pem = split_pem(r.body)
    assert pem.cert.subject.rfc4514_string() == f"CN={user}"
    assert_validity(pem.cert, 3, before, after)
    listed = {i["_id"] for i in _list(server, gid, user)["results"]}
    assert pem.cert.serial_number in listed


def test_curl_docs_create_cert_without_content_type(server, project, tmp_path):
    """Without --header "Content-Type: ...", curl sends application/x-www-form-urlencoded."""
    gid, user = project
    before = now_utc()
    r = curl(
        f'curl --verbose --digest --user "{server.public_key}:{server.private_key}" '
        f'--header "Accept: application/vnd.atlas.2023-01-01+json" '
        f'-X POST "http://{server.host_port}/api/atlas/v2/groups/{gid}/databaseUsers/{user}/certs" '
        f"--data '{{\"monthsUntilExpiration\":3}}'",
        tmp_path,
    )
    after = now_utc()
    # Prove the premise: curl really sent the form content type.
    assert "> Content-Type: application/x-www-form-urlencoded" in r.stderr, r.stderr
    assert r.all_statuses == [401, 201], (r.all_statuses, r.body)
    assert r.headers["content-type"] == V2_CT
    pem = split_pem(r.body)
    assert pem.cert.subject.rfc4514_string() == f"CN={user}"
    assert_validity(pem.cert, 3, before, after)


# ------------------------------------------------------------------ curl, legacy v1.0


def test_curl_legacy_v1_list(server, project, tmp_path):
    gid = project[0]
    user = _fresh_user(server, gid)
    pem = split_pem(server.create_cert(gid, user))
    host = server.host_port
    r = curl(
        f'curl --digest --user "{server.public_key}:{server.private_key}" '
        f'-X GET "http://{host}/api/atlas/v1.0/groups/{gid}/databaseUsers/{user}/certs"',
        tmp_path,
    )
    assert r.all_statuses == [401, 200], (r.all_statuses, r.body)
    assert r.headers["content-type"].split(";")[0].strip() == "application/json"
    doc = json.loads(r.body)
    assert "\n" not in r.body.strip() and '" : ' not in r.body  # not pretty unless asked
    # v1.0 echoes only the parameters given, then the paging (no includeCount added).
    assert doc["links"] == [
        {
            "href": f"http://{host}/api/atlas/v1.0/groups/{gid}/databaseUsers/{user}/certs"
            "?pageNum=1&itemsPerPage=100",
            "rel": "self",
        }
    ]
    assert doc["totalCount"] == 1
    [item] = doc["results"]
    _assert_cert_item(item, gid, user)
    assert item["_id"] == pem.cert.serial_number
    # Same resource as v2.
    assert doc["results"] == _list(server, gid, user)["results"]


def test_curl_legacy_v1_list_pretty_as_the_legacy_docs_show(server, project, tmp_path):
    """The legacy v1.0 documentation's example: `GET .../certs?pretty=true` answers with a
    `self` link of `.../certs?pretty=true&pageNum=1&itemsPerPage=100`."""
    gid = project[0]
    user = _fresh_user(server, gid)
    server.create_cert(gid, user)
    host = server.host_port
    url = f"http://{host}/api/atlas/v1.0/groups/{gid}/databaseUsers/{user}/certs"
    r = curl(
        f'curl --digest --user "{server.public_key}:{server.private_key}" -X GET "{url}?pretty=true"',
        tmp_path,
    )
    assert r.all_statuses == [401, 200], (r.all_statuses, r.body)
    assert '" : ' in r.body  # pretty
    doc = json.loads(r.body)
    assert doc["links"] == [{"href": f"{url}?pretty=true&pageNum=1&itemsPerPage=100", "rel": "self"}]
    # v2 keeps the observed includeCount, after what the request gave.
    v2 = server.call("GET", f"/groups/{gid}/databaseUsers/{user}/certs?pretty=true").json()
    assert v2["links"][0]["href"] == (
        server.url(f"/groups/{gid}/databaseUsers/{user}/certs") + "?pretty=true&includeCount=true&pageNum=1&itemsPerPage=100"
    )


def test_curl_legacy_v1_create(server, project, tmp_path):
    gid = project[0]
    user = _fresh_user(server, gid)
    before = now_utc()
    r = curl(
        f'curl --digest --user "{server.public_key}:{server.private_key}" '
        f'--header "Content-Type: application/json" '
        f'-X POST "http://{server.host_port}/api/atlas/v1.0/groups/{gid}/databaseUsers/{user}/certs" '
        f"--data '{{\"monthsUntilExpiration\":2}}'",
        tmp_path,
    )
    after = now_utc()
    assert r.all_statuses == [401, 201], (r.all_statuses, r.body)
    pem = split_pem(r.body)
    assert pem.cert.subject.rfc4514_string() == f"CN={user}"
    assert_validity(pem.cert, 2, before, after)
    [item] = _list(server, gid, user)["results"]
    assert item["_id"] == pem.cert.serial_number


# ------------------------------------------------------------------ curl, authentication failures


def _assert_challenge(r) -> None:
    assert r.status == 401
    assert CHALLENGE.match(r.headers["www-authenticate"]), r.headers["www-authenticate"]
    assert r.headers["content-type"].split(";")[0] == "application/json"
    doc = json.loads(r.body)
    assert doc == UNAUTHORIZED_BODY
    assert list(doc) == list(UNAUTHORIZED_BODY)  # Atlas's order: error, reason, detail, errorCode


def test_curl_without_credentials_gets_digest_challenge(server, project, tmp_path):
    gid, user = project
    r = curl(
        f'curl --header "Accept: application/vnd.atlas.2023-01-01+json" '
        f'-X GET "http://{server.host_port}/api/atlas/v2/groups/{gid}/databaseUsers/{user}/certs"',
        tmp_path,
    )
    assert r.all_statuses == [401]
    _assert_challenge(r)
    # The recorded Atlas body is Jackson-pretty-printed.
    assert r.body.rstrip("\n") == jackson_pretty(UNAUTHORIZED_BODY)
    # No credentials on a POST: no certificate gets created.
    count = _list(server, gid, user)["totalCount"]
    r = curl(
        f'curl --header "Accept: application/vnd.atlas.2023-01-01+json" '
        f'--header "Content-Type: application/json" '
        f'-X POST "http://{server.host_port}/api/atlas/v2/groups/{gid}/databaseUsers/{user}/certs" '
        f"--data '{{\"monthsUntilExpiration\":3}}'",
        tmp_path,
    )
    _assert_challenge(r)
    assert _list(server, gid, user)["totalCount"] == count


@pytest.mark.parametrize("which", ["private", "public"])
def test_curl_wrong_key_is_rejected(server, project, tmp_path, which):
    gid, user = project
    pub, priv = server.public_key, server.private_key
    if which == "private":
        priv = priv[:-1] + ("0" if priv[-1] != "0" else "1")
    else:
        pub = "zzzzzzzz"
    count = _list(server, gid, user)["totalCount"]
    for cmd in (
        f'curl --digest --user "{pub}:{priv}" --header "Accept: application/vnd.atlas.2023-01-01+json" '
        f'-X GET "http://{server.host_port}/api/atlas/v2/groups/{gid}/databaseUsers/{user}/certs?pretty=true"',
        f'curl --digest --user "{pub}:{priv}" --header "Accept: application/vnd.atlas.2023-01-01+json" '
        f'--header "Content-Type: application/json" '
        f'-X POST "http://{server.host_port}/api/atlas/v2/groups/{gid}/databaseUsers/{user}/certs" '
        f"--data '{{\"monthsUntilExpiration\":3}}'",
    ):
        r = curl(cmd, tmp_path)
        # curl answered the challenge with a (wrong) Digest response, and was refused again.
        assert r.all_statuses == [401, 401], (r.all_statuses, r.body)
        _assert_challenge(r)
    assert _list(server, gid, user)["totalCount"] == count


# ------------------------------------------------------------------ Python requests + HTTPDigestAuth


def _nc(resp: requests.Response) -> tuple[str, int]:
    auth = resp.request.headers["Authorization"]
    nonce = re.search(r'nonce="([^"]+)"', auth).group(1)
    nc = int(re.search(r"nc=([0-9a-fA-F]{8})", auth).group(1), 16)
    return nonce, nc


def test_requests_digest_client_standard_usage(server):
    base = f"{server.root}/api/atlas/v2"
    session = requests.Session()
    session.auth = HTTPDigestAuth(server.public_key, server.private_key)
    session.headers.update({"Accept": V2})

    seen: list[tuple[str, int]] = []

    def check(resp: requests.Response, status: int, first: bool = False) -> requests.Response:
        assert resp.status_code == status, resp.text
        if first:
            assert [h.status_code for h in resp.history] == [401]
        else:
            # The client reuses the server's nonce with an increasing nonce count, without a
            # new challenge.
            assert resp.history == [], [h.status_code for h in resp.history]
        seen.append(_nc(resp))
        return resp

    name = f"req-{unique_user()}"
    r = check(session.post(f"{base}/groups", json={"name": name, "orgId": server.org_id}), 201, first=True)
    assert r.headers["content-type"] == V2_CT
    gid = r.json()["id"]
    assert re.fullmatch(r"[0-9a-f]{24}", gid)
    assert r.json()["name"] == name

    user = unique_user("req")
    body = {
        "databaseName": "$external",
        "username": user,
        "x509Type": "MANAGED",
        "roles": [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}],
        "groupId": gid,
    }
    r = check(session.post(f"{base}/groups/{gid}/databaseUsers", json=body), 201)
    assert r.json()["username"] == user and r.json()["x509Type"] == "MANAGED"

    before = now_utc()
    r = check(
        session.post(f"{base}/groups/{gid}/databaseUsers/{user}/certs", json={"monthsUntilExpiration": 3}), 201
    )
    after = now_utc()
    assert r.headers["content-type"] == V2_CT
    pem = split_pem(r.text)
    assert_validity(pem.cert, 3, before, after)

    r = check(session.get(f"{base}/groups/{gid}/databaseUsers/{user}/certs"), 200)
    [item] = r.json()["results"]
    assert item["_id"] == pem.cert.serial_number

    r = check(session.get(f"{base}/groups/{gid}/databaseUsers/$external/{user}"), 200)
    assert r.json()["username"] == user
    assert r.json()["databaseName"] == "$external"
    assert r.json()["x509Type"] == "MANAGED"

    r = check(session.get(f"{base}/groups/{gid}/databaseUsers"), 200)
    assert [u["username"] for u in r.json()["results"]] == [user]
    assert r.json()["totalCount"] == 1

    r = check(session.get(f"{base}/groups/{gid}"), 200)
    assert r.json()["id"] == gid

    for _ in range(3):
        check(session.get(f"{base}/groups/{gid}/databaseUsers/{user}/certs", params={"pretty": "true"}), 200)

    nonces = {n for n, _ in seen}
    assert len(nonces) == 1, nonces
    assert [nc for _, nc in seen] == list(range(1, len(seen) + 1))


def test_requests_wrong_password_is_refused(server, project):
    gid, user = project
    s = requests.Session()
    s.auth = HTTPDigestAuth(server.public_key, server.private_key + "x")
    r = s.get(server.url(f"/groups/{gid}/databaseUsers/{user}/certs"), headers={"Accept": V2}, timeout=30)
    assert r.status_code == 401
    assert [h.status_code for h in r.history] == [401]  # challenge answered, then refused
    assert r.json() == UNAUTHORIZED_BODY


# ------------------------------------------------------------------ list entries == issued PEMs


def test_list_entries_match_issued_certificates(server, project):
    gid = project[0]
    user = _fresh_user(server, gid)
    pems = {}
    for months in (1, 3, 24):
        before = now_utc()
        pem = split_pem(server.create_cert(gid, user, months=months))
        assert_validity(pem.cert, months, before, now_utc())
        pems[pem.cert.serial_number] = pem

    r = server.call("GET", f"/groups/{gid}/databaseUsers/{user}/certs")
    assert r.status_code == 200
    doc = r.json()
    assert doc["totalCount"] == 3
    assert {i["_id"] for i in doc["results"]} == set(pems)
    for item in doc["results"]:
        _assert_cert_item(item, gid, user)
        cert = pems[item["_id"]].cert
        assert item["_id"] == cert.serial_number
        assert item["createdAt"] == atlas_date(cert.not_valid_before_utc)
        assert item["notAfter"] == atlas_date(cert.not_valid_after_utc)
        assert parse_atlas_date(item["createdAt"]) == cert.not_valid_before_utc
        assert parse_atlas_date(item["notAfter"]) == cert.not_valid_after_utc
        assert item["subject"] == cert.subject.rfc4514_string()
        assert f'"_id":{item["_id"]},' in r.text  # a JSON integer, exact (may exceed 2^53)
    created = [i["createdAt"] for i in doc["results"]]
    assert created == sorted(created)  # oldest first
