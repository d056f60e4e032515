"""Black-box tests of Atlas's wire behaviour on success paths.

Status codes, headers, links, pagination, key order, dates, `envelope` and `pretty`, user
representations and percent-encoded usernames, against the real binary over a real socket.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from _certs_util import add_months

try:
    from test_errors import assert_atlas_error, make_cert
except ImportError:  # the directory became a package
    from .test_errors import assert_atlas_error, make_cert

V2 = "application/vnd.atlas.2023-01-01+json"
V2_CONTENT_TYPE = "application/vnd.atlas.2023-01-01+json;charset=utf-8"
ROLES = [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}]
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
PROJECT_RELS = ["containers", "clusters", "databaseUsers", "peers", "processes", "whitelist"]


def uname(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def user_path(gid: str, db: str, username: str) -> str:
    return f"/groups/{gid}/databaseUsers/{db}/{quote(username, safe='')}"


def certs_path(gid: str, username: str) -> str:
    return f"/groups/{gid}/databaseUsers/{quote(username, safe='')}/certs"


def parse_date(s: str) -> dt.datetime:
    assert DATE.match(s), s
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def assert_sorted_keys(obj, where: str = "$") -> None:
    """Every object, at every depth, has its keys in alphabetical (code point) order."""
    if isinstance(obj, dict):
        keys = list(obj.keys())
        assert keys == sorted(keys), f"{where}: keys not sorted: {keys}"
        for k, v in obj.items():
            assert_sorted_keys(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            assert_sorted_keys(v, f"{where}[{i}]")


def ok(resp, status: int = 200):
    """A successful Atlas v2 response: the status and the versioned media type."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    assert resp.headers["Content-Type"] == V2_CONTENT_TYPE
    assert "X-Error-Code" not in resp.headers
    return resp


def jackson_pretty(value, depth: int = 0) -> str:
    """Jackson's DefaultPrettyPrinter, written independently of the server: objects indent two
    spaces per nested object, `" : "` between key and value, arrays stay inline as `[ a, b ]`,
    empty containers are `{ }` and `[ ]`."""
    if isinstance(value, dict):
        if not value:
            return "{ }"
        pad = "  " * (depth + 1)
        items = [
            f"\n{pad}{json.dumps(k, ensure_ascii=False)} : {jackson_pretty(v, depth + 1)}"
            for k, v in value.items()
        ]
        return "{" + ",".join(items) + "\n" + "  " * depth + "}"
    if isinstance(value, list):
        if not value:
            return "[ ]"
        return "[ " + ", ".join(jackson_pretty(v, depth) for v in value) + " ]"
    return json.dumps(value, ensure_ascii=False)


@pytest.fixture(scope="module")
def gid(server) -> str:
    return server.create_project()


@pytest.fixture()
def managed(server, gid) -> str:
    name = uname("m")
    server.create_user(gid, name)
    return name


# ---------------------------------------------------------------------------------------------
# Projects
# ---------------------------------------------------------------------------------------------


def expected_project_links(server, gid: str, version: str = "v2") -> list[dict]:
    base = server.url(f"/groups/{gid}", version)
    return [{"href": base, "rel": "self"}] + [
        {"href": f"{base}/{rel}", "rel": f"https://cloud.mongodb.com/{rel}"} for rel in PROJECT_RELS
    ]


def test_project_create_get_list_delete(server):
    name = uname("proj")
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    r = ok(server.call("POST", "/groups", json={"name": name, "orgId": server.org_id}), 201)
    created = r.json()
    gid = created["id"]
    assert re.fullmatch(r"[a-f0-9]{24}", gid)
    assert list(created.keys()) == [
        "clusterCount", "created", "id", "links", "name", "orgId", "tags", "withDefaultAlertsSettings",
    ]
    assert created["clusterCount"] == 0
    assert created["name"] == name
    assert created["orgId"] == server.org_id
    assert created["tags"] == []
    assert created["withDefaultAlertsSettings"] is True
    t = parse_date(created["created"])
    assert before - dt.timedelta(seconds=5) <= t <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    assert created["links"] == expected_project_links(server, gid)
    assert r.headers["Location"] == server.url(f"/groups/{gid}")

    got = ok(server.call("GET", f"/groups/{gid}")).json()
    assert got == created
    assert len(got["links"]) == 7

    listed = ok(server.call("GET", "/groups", params={"itemsPerPage": 500})).json()
    mine = [p for p in listed["results"] if p["id"] == gid]
    assert len(mine) == 1
    # Inside a list, a project carries only its self link.
    assert mine[0]["links"] == [{"href": server.url(f"/groups/{gid}"), "rel": "self"}]
    assert {k: v for k, v in mine[0].items() if k != "links"} == {
        k: v for k, v in created.items() if k != "links"
    }

    r = ok(server.call("DELETE", f"/groups/{gid}"), 202)
    assert r.text == "{}"
    assert_atlas_error(server.call("GET", f"/groups/{gid}"), 404, "GROUP_NOT_FOUND", [gid])


def test_project_tags_and_alert_settings_round_trip(server):
    tags = [{"key": "env", "value": "test"}, {"key": "team", "value": "db"}]
    r = ok(server.call("POST", "/groups", json={
        "name": uname("tags"), "orgId": server.org_id, "tags": tags,
        "withDefaultAlertsSettings": False,
    }), 201)
    body = r.json()
    assert body["tags"] == tags
    assert body["withDefaultAlertsSettings"] is False
    assert ok(server.call("GET", f"/groups/{body['id']}")).json() == body


def test_project_links_on_v1(server, gid):
    r = server.call("GET", f"/groups/{gid}", version="v1.0")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["links"] == expected_project_links(server, gid, "v1.0")


def test_project_list_links(server):
    body = ok(server.call("GET", "/groups")).json()
    assert list(body.keys()) == ["links", "results", "totalCount"]
    assert body["links"][0] == {
        "href": server.url("/groups") + "?includeCount=true&pageNum=1&itemsPerPage=100",
        "rel": "self",
    }
    assert body["totalCount"] == len(body["results"]) >= 1


def test_success_responses_carry_security_headers(server, gid):
    r = ok(server.call("GET", f"/groups/{gid}"))
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"


# ---------------------------------------------------------------------------------------------
# Database users
# ---------------------------------------------------------------------------------------------


def test_database_user_lifecycle(server, gid):
    name = uname("life")
    body = {
        "databaseName": "$external", "username": name, "x509Type": "MANAGED", "roles": ROLES,
        "groupId": gid,
    }
    r = ok(server.call("POST", f"/groups/{gid}/databaseUsers", json=body), 201)
    self_href = server.url(f"/groups/{gid}/databaseUsers/$external/{name}")
    expected = {
        "awsIAMType": "NONE",
        "databaseName": "$external",
        "groupId": gid,
        "labels": [],
        "ldapAuthType": "NONE",
        "links": [{"href": self_href, "rel": "self"}],
        "oidcAuthType": "NONE",
        "roles": ROLES,
        "scopes": [],
        "username": name,
        "x509Type": "MANAGED",
    }
    assert r.json() == expected
    assert list(r.json().keys()) == list(expected.keys())
    assert ok(server.call("GET", user_path(gid, "$external", name))).json() == expected

    new_roles = [{"databaseName": "admin", "roleName": "read"},
                 {"collectionName": "c", "databaseName": "app", "roleName": "readWrite"}]
    labels = [{"key": "k", "value": "v"}]
    scopes = [{"name": "Cluster0", "type": "CLUSTER"}]
    r = ok(server.call("PATCH", user_path(gid, "$external", name),
                       json={"roles": new_roles, "labels": labels, "scopes": scopes,
                             "description": "hello"}))
    updated = dict(expected, roles=new_roles, labels=labels, scopes=scopes, description="hello")
    assert r.json() == updated
    assert_sorted_keys(r.json())
    assert ok(server.call("GET", user_path(gid, "$external", name))).json() == updated

    r = server.call("DELETE", user_path(gid, "$external", name))
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["Content-Type"] == V2_CONTENT_TYPE
    assert_atlas_error(
        server.call("GET", user_path(gid, "$external", name)), 404, "USERNAME_NOT_FOUND", [name]
    )


def test_scram_user_never_returns_password(server, gid):
    name = uname("scram")
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).replace(microsecond=0)
    later_s = later.strftime("%Y-%m-%dT%H:%M:%SZ")
    r = ok(server.call("POST", f"/groups/{gid}/databaseUsers", json={
        "databaseName": "admin", "username": name, "password": "s3cret-passw0rd", "roles": ROLES,
        "groupId": gid, "deleteAfterDate": later_s,
    }), 201)
    created = r.json()
    assert "password" not in r.text and "s3cret" not in r.text
    assert created["x509Type"] == "NONE"
    assert created["databaseName"] == "admin"
    assert parse_date(created["deleteAfterDate"]) == later
    assert_sorted_keys(created)

    for resp in (
        server.call("GET", user_path(gid, "admin", name)),
        server.call("PATCH", user_path(gid, "admin", name), json={"password": "an0ther-passw0rd"}),
        server.call("GET", f"/groups/{gid}/databaseUsers", params={"itemsPerPage": 500}),
    ):
        ok(resp)
        assert "password" not in resp.text and "passw0rd" not in resp.text
    assert ok(server.call("GET", user_path(gid, "admin", name))).json() == created


def test_user_list(server):
    gid = server.create_project()
    names = sorted(uname("l") for _ in range(3))
    for n in names:
        server.create_user(gid, n)
    r = ok(server.call("GET", f"/groups/{gid}/databaseUsers"))
    body = r.json()
    assert list(body.keys()) == ["links", "results", "totalCount"]
    assert body["totalCount"] == 3
    assert body["links"] == [{
        "href": server.url(f"/groups/{gid}/databaseUsers") + "?includeCount=true&pageNum=1&itemsPerPage=100",
        "rel": "self",
    }]
    assert sorted(u["username"] for u in body["results"]) == names
    for u in body["results"]:
        assert u["links"] == [
            {"href": server.url(f"/groups/{gid}/databaseUsers/$external/{u['username']}"), "rel": "self"}
        ]
    assert_sorted_keys(body)

    r = ok(server.call("GET", f"/groups/{gid}/databaseUsers", params={"itemsPerPage": 2, "pageNum": 2}))
    page2 = r.json()
    assert len(page2["results"]) == 1
    assert [l["rel"] for l in page2["links"]] == ["self", "previous"]


@pytest.mark.parametrize(
    "username,db,fields",
    [
        ("idp/group", "admin", {"x509Type": "NONE", "oidcAuthType": "IDP_GROUP"}),
        ("alice smith", "$external", {"x509Type": "MANAGED"}),
        ("Zoë 用户/ops", "admin", {"x509Type": "NONE", "oidcAuthType": "IDP_GROUP"}),
    ],
    ids=["slash", "space", "unicode-space-slash"],
)
def test_username_round_trips_via_percent_encoded_path(server, gid, username, db, fields):
    username = f"{username}-{uuid.uuid4().hex[:6]}"
    r = ok(server.call("POST", f"/groups/{gid}/databaseUsers", json={
        "databaseName": db, "username": username, "roles": ROLES, "groupId": gid, **fields,
    }), 201)
    created = r.json()
    assert created["username"] == username
    self_href = created["links"][0]["href"]
    assert self_href == server.url(f"/groups/{gid}/databaseUsers/{db}/") + quote(username, safe="")
    assert ok(server.call("GET", user_path(gid, db, username))).json() == created
    # The self link is directly usable.
    r = ok(server.session.get(self_href, headers={"Accept": V2}, timeout=60))
    assert r.json() == created
    r = ok(server.call("PATCH", user_path(gid, db, username), json={"description": "x"}))
    assert r.json()["username"] == username
    r = server.call("DELETE", user_path(gid, db, username))
    assert r.status_code == 204, r.text
    assert_atlas_error(server.call("GET", user_path(gid, db, username)), 404, "USERNAME_NOT_FOUND",
                       [username])


def test_managed_user_with_space_gets_certs(server, gid):
    name = f"alice smith {uuid.uuid4().hex[:6]}"
    server.create_user(gid, name)
    pem = ok(server.call("POST", certs_path(gid, name), json={"monthsUntilExpiration": 2}), 201).text
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.rfc4514_string() == f"CN={name}"
    body = ok(server.call("GET", certs_path(gid, name))).json()
    assert [c["subject"] for c in body["results"]] == [f"CN={name}"]
    assert body["links"][0]["href"].startswith(
        server.url(f"/groups/{gid}/databaseUsers/{quote(name, safe='')}/certs?")
    )


def test_get_then_patch_back_is_accepted(server, gid, managed):
    user = ok(server.call("GET", user_path(gid, "$external", managed))).json()
    r = ok(server.call("PATCH", user_path(gid, "$external", managed), json=user))
    assert r.json() == user


def test_cert_request_with_read_only_fields_is_accepted(server, gid, managed):
    r = server.call("POST", certs_path(gid, managed), json={
        "monthsUntilExpiration": 3, "_id": 1, "subject": "CN=other", "groupId": gid,
    })
    ok(r, 201)
    cert = x509.load_pem_x509_certificate(r.content)
    assert cert.subject.rfc4514_string() == f"CN={managed}"


# ---------------------------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------------------------

PEM_LAYOUT = re.compile(
    r"\A-----BEGIN CERTIFICATE-----\n(?:[A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n"
    r"-----BEGIN PRIVATE KEY-----\n(?:[A-Za-z0-9+/=]{1,64}\n)+-----END PRIVATE KEY-----\n\Z"
)


def test_create_cert_returns_raw_pem(server, gid, managed):
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    r = ok(server.call("POST", certs_path(gid, managed), json={"monthsUntilExpiration": 3}), 201)
    assert PEM_LAYOUT.match(r.text), r.text
    cert = x509.load_pem_x509_certificate(r.content)
    key = serialization.load_pem_private_key(r.content[r.content.index(b"-----BEGIN PRIVATE KEY"):], None)
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)  # the fixture's --key-algorithm
    assert cert.subject.rfc4514_string() == f"CN={managed}"
    issuer = {a.oid: a.value for a in cert.issuer}
    assert issuer == {NameOID.COMMON_NAME: gid, NameOID.ORGANIZATIONAL_UNIT_NAME: "Atlas",
                      NameOID.ORGANIZATION_NAME: "MongoDB Inc"}
    assert 0 < cert.serial_number < 2**63
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    issued = cert.not_valid_before_utc + dt.timedelta(hours=1)
    assert before - dt.timedelta(seconds=5) <= issued <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)

    listed = ok(server.call("GET", certs_path(gid, managed))).json()
    assert listed["totalCount"] == 1
    item = listed["results"][0]
    assert item == {
        "_id": cert.serial_number,
        "createdAt": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "groupId": gid,
        "notAfter": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "subject": f"CN={managed}",
    }
    assert list(item.keys()) == ["_id", "createdAt", "groupId", "notAfter", "subject"]
    # _id is a JSON integer (it may exceed 2**53), not a string.
    raw = server.call("GET", certs_path(gid, managed)).text
    assert f'"_id":{cert.serial_number},' in raw


@pytest.mark.dates
def test_create_cert_needs_a_body_and_empty_object_means_three_months(server, gid, managed):
    before = ok(server.call("GET", certs_path(gid, managed))).json()["totalCount"]
    # The spec marks the request body required: an authenticated empty body is malformed.
    r = server.call("POST", certs_path(gid, managed), data=b"", headers={"Content-Type": V2})
    assert r.status_code == 400 and r.json()["errorCode"] == "MALFORMED_JSON", r.text
    r = ok(server.call("POST", certs_path(gid, managed), json={}), 201)
    cert = x509.load_pem_x509_certificate(r.content)
    issued = cert.not_valid_before_utc + dt.timedelta(hours=1)
    assert cert.not_valid_after_utc == add_months(issued, 3)
    assert ok(server.call("GET", certs_path(gid, managed))).json()["totalCount"] == before + 1


def _issue_in_distinct_seconds(server, gid, user, n):
    """Issues `n` certificates, each in a later wall-clock second than the one before, so that
    their createdAt values are strictly increasing. Returns their serials in issue order."""
    serials = []
    for i in range(n):
        if i:
            time.sleep(1.02 - (time.time() % 1))
        pem = server.create_cert(gid, user)
        serials.append(x509.load_pem_x509_certificate(pem.encode()).serial_number)
    return serials


@pytest.fixture(scope="module")
def five_certs(server, gid):
    user = uname("page")
    server.create_user(gid, user)
    return user, _issue_in_distinct_seconds(server, gid, user, 5)


def test_cert_pagination(server, gid, five_certs):
    user, serials = five_certs
    base = server.url(certs_path(gid, user))
    seen, sizes, created = [], [], []
    for page in (1, 2, 3):
        body = ok(server.call("GET", certs_path(gid, user), params={"itemsPerPage": 2, "pageNum": page})).json()
        assert body["totalCount"] == 5
        sizes.append(len(body["results"]))
        seen += [c["_id"] for c in body["results"]]
        created += [parse_date(c["createdAt"]) for c in body["results"]]
        links = {l["rel"]: l["href"] for l in body["links"]}
        assert [l["rel"] for l in body["links"]][0] == "self"
        assert links["self"] == f"{base}?includeCount=true&pageNum={page}&itemsPerPage=2"
        if page < 3:
            assert links["next"] == f"{base}?includeCount=true&itemsPerPage=2&pageNum={page + 1}"
        else:
            assert "next" not in links
        if page > 1:
            assert links["previous"] == f"{base}?includeCount=true&itemsPerPage=2&pageNum={page - 1}"
        else:
            assert "previous" not in links
        assert set(links) <= {"self", "next", "previous"}
        for href in links.values():
            assert href.startswith(server.root + "/api/atlas/v2/")
    assert sizes == [2, 2, 1]
    assert seen == serials  # oldest first, each exactly once
    assert created == sorted(created) and len(set(created)) == 5


def test_following_next_links_walks_every_cert(server, gid, five_certs):
    user, serials = five_certs
    r = ok(server.call("GET", certs_path(gid, user), params={"itemsPerPage": 2}))
    walked, pages = [], 0
    while True:
        body = r.json()
        pages += 1
        walked += [c["_id"] for c in body["results"]]
        nxt = [l["href"] for l in body["links"] if l["rel"] == "next"]
        if not nxt:
            break
        r = ok(server.session.get(nxt[0], headers={"Accept": V2}, timeout=60))
    assert pages == 3
    assert walked == serials
    assert len(set(walked)) == 5


def test_include_count_false(server, gid, five_certs):
    user, serials = five_certs
    body = ok(server.call("GET", certs_path(gid, user),
                          params={"includeCount": "false", "itemsPerPage": 2})).json()
    assert body["totalCount"] == 0  # documented choice: Atlas sends 0 rather than omitting it
    assert [c["_id"] for c in body["results"]] == serials[:2]
    base = server.url(certs_path(gid, user))
    assert body["links"] == [
        {"href": f"{base}?includeCount=false&pageNum=1&itemsPerPage=2", "rel": "self"},
        {"href": f"{base}?includeCount=false&itemsPerPage=2&pageNum=2", "rel": "next"},
    ]


def test_page_beyond_the_end_is_empty(server, gid, five_certs):
    user, _ = five_certs
    body = ok(server.call("GET", certs_path(gid, user), params={"itemsPerPage": 2, "pageNum": 9})).json()
    assert body["results"] == []
    assert body["totalCount"] == 5
    assert "next" not in [l["rel"] for l in body["links"]]


def test_default_paging_self_link(server, gid, five_certs):
    user, serials = five_certs
    body = ok(server.call("GET", certs_path(gid, user))).json()
    assert body["links"] == [{
        "href": server.url(certs_path(gid, user)) + "?includeCount=true&pageNum=1&itemsPerPage=100",
        "rel": "self",
    }]
    assert [c["_id"] for c in body["results"]] == serials


def test_empty_cert_list(server, gid, managed):
    body = ok(server.call("GET", certs_path(gid, managed))).json()
    assert body == {
        "links": [{"href": server.url(certs_path(gid, managed))
                   + "?includeCount=true&pageNum=1&itemsPerPage=100", "rel": "self"}],
        "results": [],
        "totalCount": 0,
    }


def test_certificates_outlive_the_user_as_on_atlas_when_deletion_does_not_revoke(make_server):
    """Atlas keys certificates by (project, username): they outlive the user's deletion and
    reappear when it is recreated. dbcerts does so with `revoke-on-user-delete = false`."""
    server = make_server(revoke_on_user_delete=False)
    gid = server.create_project()
    name = uname("gone")
    server.create_user(gid, name)
    old = x509.load_pem_x509_certificate(server.create_cert(gid, name).encode()).serial_number
    r = server.call("DELETE", user_path(gid, "$external", name))
    assert r.status_code == 204
    assert_atlas_error(server.call("GET", certs_path(gid, name)), 404, "USERNAME_NOT_FOUND", [name])
    server.create_user(gid, name)
    body = ok(server.call("GET", certs_path(gid, name))).json()
    assert [c["_id"] for c in body["results"]] == [old]
    new = x509.load_pem_x509_certificate(server.create_cert(gid, name).encode()).serial_number
    body = ok(server.call("GET", certs_path(gid, name))).json()
    assert sorted(c["_id"] for c in body["results"]) == sorted([old, new])
    assert body["totalCount"] == 2


def test_deleting_the_user_revokes_its_certificates_by_default(server, gid):
    """By default (`revoke-on-user-delete = true`) the deletion revokes the user's certificates
    (cessationOfOperation), and revoked certificates are left out of the Atlas list: a
    recreated user starts with none (docs/COMPATIBILITY.md, "lifetime of certificates")."""
    name = uname("gone")
    server.create_user(gid, name)
    old = x509.load_pem_x509_certificate(server.create_cert(gid, name).encode()).serial_number
    r = server.call("DELETE", user_path(gid, "$external", name))
    assert r.status_code == 204
    server.create_user(gid, name)
    body = ok(server.call("GET", certs_path(gid, name))).json()
    assert body["results"] == [] and body["totalCount"] == 0, body
    new = x509.load_pem_x509_certificate(server.create_cert(gid, name).encode()).serial_number
    body = ok(server.call("GET", certs_path(gid, name))).json()
    assert [c["_id"] for c in body["results"]] == [new] and body["totalCount"] == 1, body
    # The old one is still there, revoked, in dbcerts' status list.
    r = server.session.get(f"{server.root}/api/dbcerts/v1/groups/{gid}/databaseUsers/{name}/certs", timeout=60)
    assert r.status_code == 200, r.text
    statuses = {c["_id"]: c for c in r.json()["results"]}
    assert statuses[old]["status"] == "REVOKED", statuses
    assert statuses[old]["revocationReason"] == "cessationOfOperation", statuses
    assert statuses[new]["status"] == "VALID", statuses


def test_certs_are_per_project(server, gid):
    name = uname("shared")
    other = server.create_project()
    server.create_user(gid, name)
    server.create_user(other, name)
    server.create_cert(gid, name)
    assert ok(server.call("GET", certs_path(other, name))).json()["totalCount"] == 0
    assert ok(server.call("GET", certs_path(gid, name))).json()["totalCount"] == 1


# ---------------------------------------------------------------------------------------------
# userSecurity
# ---------------------------------------------------------------------------------------------


def test_user_security_status_codes_and_shapes(server):
    gid = server.create_project()
    r = ok(server.call("GET", f"/groups/{gid}/userSecurity"))
    body = r.json()
    assert list(body.keys()) == ["customerX509", "ldap"]
    assert body["customerX509"] == {}
    assert isinstance(body["ldap"], dict)
    assert body["ldap"]["authenticationEnabled"] is False
    assert body["ldap"]["authorizationEnabled"] is False

    ca = make_cert("Wire CA")
    r = ok(server.call("PATCH", f"/groups/{gid}/userSecurity", json={"customerX509": {"cas": ca}}), 202)
    assert r.json() == {"customerX509": {"cas": ca}, "ldap": body["ldap"]}

    ldap = {"hostname": "ldap.example.com", "port": 636, "bindUsername": "CN=admin,DC=example,DC=org",
            "bindPassword": "secret!", "authenticationEnabled": True}
    r = ok(server.call("PATCH", f"/groups/{gid}/userSecurity", json={"ldap": ldap}), 202)
    got = r.json()
    assert got["customerX509"] == {"cas": ca}  # a partial update keeps the CA
    assert got["ldap"]["hostname"] == "ldap.example.com"
    assert got["ldap"]["port"] == 636
    assert got["ldap"]["authenticationEnabled"] is True
    assert "bindPassword" not in got["ldap"] and "secret!" not in r.text
    assert_sorted_keys(got)
    assert ok(server.call("GET", f"/groups/{gid}/userSecurity")).json() == got

    r = ok(server.call("DELETE", f"/groups/{gid}/userSecurity/customerX509"), 202)
    assert r.json() == {"customerX509": {}, "ldap": got["ldap"]}
    assert ok(server.call("GET", f"/groups/{gid}/userSecurity")).json() == r.json()
    # Disabling again is harmless.
    r = ok(server.call("DELETE", f"/groups/{gid}/userSecurity/customerX509"), 202)
    assert r.json()["customerX509"] == {}


# ---------------------------------------------------------------------------------------------
# Key order and dates everywhere
# ---------------------------------------------------------------------------------------------


def test_keys_are_alphabetical_everywhere(server, gid, five_certs):
    user, _ = five_certs
    scram = uname("k")
    server.create_user(gid, scram, x509_type="NONE", databaseName="admin", password="passw0rd-123",
                       labels=[{"key": "a", "value": "b"}],
                       roles=[{"roleName": "read", "databaseName": "db", "collectionName": "c"}])
    bodies = {
        "project": server.call("GET", f"/groups/{gid}"),
        "projects": server.call("GET", "/groups"),
        "users": server.call("GET", f"/groups/{gid}/databaseUsers", params={"itemsPerPage": 500}),
        "user": server.call("GET", user_path(gid, "admin", scram)),
        "certs": server.call("GET", certs_path(gid, user)),
        "userSecurity": server.call("GET", f"/groups/{gid}/userSecurity"),
        "envelope": server.call("GET", f"/groups/{gid}", params={"envelope": "true"}),
        "error": server.call("GET", "/groups/111111111111111111111111"),
    }
    for what, r in bodies.items():
        assert r.status_code in (200, 404), (what, r.text)
        assert_sorted_keys(r.json(), what)
    # Raw text order, not just the parsed order: roles' collectionName sorts first.
    assert '"roles":[{"collectionName":"c","databaseName":"db","roleName":"read"}]' in bodies["user"].text


def test_dates_have_no_fractional_seconds(server, gid, five_certs):
    user, _ = five_certs
    project = ok(server.call("GET", f"/groups/{gid}")).json()
    parse_date(project["created"])
    for c in ok(server.call("GET", certs_path(gid, user))).json()["results"]:
        created, not_after = parse_date(c["createdAt"]), parse_date(c["notAfter"])
        assert not_after > created


# ---------------------------------------------------------------------------------------------
# envelope and pretty
# ---------------------------------------------------------------------------------------------


def test_envelope_entity(server, gid):
    plain = ok(server.call("GET", f"/groups/{gid}")).json()
    r = ok(server.call("GET", f"/groups/{gid}", params={"envelope": "true"}))
    assert r.json() == {"content": plain, "status": 200}
    assert list(r.json().keys()) == ["content", "status"]
    r = ok(server.call("GET", f"/groups/{gid}", params={"envelope": "false"}))
    assert r.json() == plain


def test_envelope_list(server, gid, five_certs):
    user, _ = five_certs
    plain = ok(server.call("GET", certs_path(gid, user), params={"itemsPerPage": 2})).json()
    r = ok(server.call("GET", certs_path(gid, user), params={"itemsPerPage": 2, "envelope": "true"}))
    body = r.json()
    assert body == dict(plain, status=200, links=echoing(plain["links"], "envelope=true"))
    assert list(body.keys()) == ["links", "results", "status", "totalCount"]
    # The links echo the parameters given, then includeCount and the paging.
    assert body["links"][0]["href"].endswith("?envelope=true&includeCount=true&pageNum=1&itemsPerPage=2")


def test_envelope_on_create_cert(server, gid, managed):
    r = ok(server.call("POST", certs_path(gid, managed), params={"envelope": "true"},
                       json={"monthsUntilExpiration": 3}), 201)
    body = r.json()
    assert list(body.keys()) == ["content", "status"]
    assert body["status"] == 201
    assert PEM_LAYOUT.match(body["content"]), body["content"]
    serial = x509.load_pem_x509_certificate(body["content"].encode()).serial_number
    listed = ok(server.call("GET", certs_path(gid, managed))).json()["results"]
    assert [c["_id"] for c in listed] == [serial]


def test_envelope_on_create_and_delete_project(server):
    r = ok(server.call("POST", "/groups", params={"envelope": "true"},
                       json={"name": uname("env"), "orgId": server.org_id}), 201)
    body = r.json()
    assert list(body.keys()) == ["content", "status"]
    assert body["status"] == 201
    gid = body["content"]["id"]
    assert body["content"] == ok(server.call("GET", f"/groups/{gid}")).json()
    r = ok(server.call("DELETE", f"/groups/{gid}", params={"envelope": "true"}), 202)
    assert r.json() == {"content": {}, "status": 202}


def test_envelope_on_disable_customer_x509(server):
    gid = server.create_project()
    r = ok(server.call("DELETE", f"/groups/{gid}/userSecurity/customerX509",
                       params={"envelope": "true"}), 202)
    body = r.json()
    assert body["status"] == 202
    assert body["content"]["customerX509"] == {}


def test_pretty_entity_is_jackson_style(server, gid):
    plain = ok(server.call("GET", f"/groups/{gid}"))
    r = ok(server.call("GET", f"/groups/{gid}", params={"pretty": "true"}))
    assert r.text.startswith('{\n  "clusterCount" : 0,\n  "created" : "')
    assert '"links" : [ {\n    "href" : "' in r.text
    assert '"tags" : [ ],' in r.text
    assert json.loads(r.text) == plain.json()
    assert r.text == jackson_pretty(plain.json())


def echoing(links: list[dict], given: str) -> list[dict]:
    """`links` as a request that also gave the parameters `given` sees them: echoed first."""
    return [dict(link, href=link["href"].replace("?", f"?{given}&", 1)) for link in links]


def test_pretty_list_and_envelope(server, gid, five_certs):
    user, _ = five_certs
    plain = ok(server.call("GET", certs_path(gid, user), params={"itemsPerPage": 2})).json()
    r = ok(server.call("GET", certs_path(gid, user), params={"itemsPerPage": 2, "pretty": "true"}))
    expected = dict(plain, links=echoing(plain["links"], "pretty=true"))
    assert json.loads(r.text) == expected
    assert r.text == jackson_pretty(expected)
    r = ok(server.call("GET", certs_path(gid, user),
                       params={"itemsPerPage": 2, "pretty": "true", "envelope": "true"}))
    expected = dict(plain, status=200, links=echoing(plain["links"], "pretty=true&envelope=true"))
    assert r.text == jackson_pretty(dict(sorted(expected.items())))


def test_pretty_user_security_with_empty_object(server):
    gid = server.create_project()
    plain = ok(server.call("GET", f"/groups/{gid}/userSecurity"))
    r = ok(server.call("GET", f"/groups/{gid}/userSecurity", params={"pretty": "true"}))
    assert r.text.startswith('{\n  "customerX509" : { },\n  "ldap" : {\n    "')
    assert r.text == jackson_pretty(plain.json())


def test_pretty_false_is_compact(server, gid):
    r = ok(server.call("GET", f"/groups/{gid}", params={"pretty": "false"}))
    assert "\n" not in r.text and '": ' not in r.text
    assert r.text == json.dumps(r.json(), separators=(",", ":"), ensure_ascii=False)


def test_pretty_is_ignored_on_disable_customer_x509(server):
    """`DELETE .../customerX509` takes only `envelope`; other parameters are ignored."""
    gid = server.create_project()
    r = ok(server.call("DELETE", f"/groups/{gid}/userSecurity/customerX509",
                       params={"pretty": "true"}), 202)
    assert "\n" not in r.text
