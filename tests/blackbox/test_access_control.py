"""Access control through the Atlas endpoints and the operator commands, against the real
binary: organization API keys and their project roles, project-created keys, IP access lists
for keys and service accounts (with real connections from 127.0.0.2), `dbcerts apikey`, and the
hash-chained audit log (`dbcerts audit list/verify`, including tampering with the database).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess

import requests
from requests.auth import HTTPDigestAuth

from _certs_util import split_pem, unique_user
from conftest import (
    SA_V,
    V2,
    bearer_call,
    create_service_account,
    dbcerts_bin,
    get_token,
    session_from,
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


class Key:
    """An API key's credentials and a Digest session that uses them."""

    def __init__(self, server, body: dict) -> None:
        self.server = server
        self.id = body["id"]
        self.public_key = body["publicKey"]
        self.private_key = body["privateKey"]
        self.session = requests.Session()
        self.session.auth = HTTPDigestAuth(self.public_key, self.private_key)

    def call(self, method: str, path: str, *, version: str = "v2", session=None, **kw):
        headers = kw.pop("headers", {})
        if version == "v2":
            headers.setdefault("Accept", V2)
        s = session or self.session
        return s.request(method, self.server.url(path, version), headers=headers, timeout=60, **kw)


def create_org_key(server, roles=("ORG_MEMBER",), desc: str = "black-box key") -> tuple[Key, dict]:
    r = server.call("POST", f"/orgs/{server.org_id}/apiKeys", json={"desc": desc, "roles": list(roles)})
    assert r.status_code == 200, r.text
    body = r.json()
    return Key(server, body), body


def masked(private_key: str) -> str:
    return "********-****-****-" + private_key[-12:]


def dbcerts(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([dbcerts_bin(), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert out.returncode == 0, f"dbcerts {' '.join(args)} exited {out.returncode}:\n{out.stderr}"
    return out


def audit_entries(server) -> list[dict]:
    out = dbcerts("audit", "list", *server.store_args, "--json")
    return [json.loads(line) for line in out.stdout.splitlines()]


def certs_path(gid: str, user: str) -> str:
    return f"/groups/{gid}/databaseUsers/{user}/certs"


# ------------------------------------------------------------------ organization API keys


def test_org_key_is_shown_once_and_sees_no_projects(server):
    gid = server.create_project()
    key, created = create_org_key(server, roles=["ORG_MEMBER"])
    assert UUID.match(created["privateKey"]), created["privateKey"]
    assert OBJECT_ID.match(created["id"])
    assert len(created["publicKey"]) == 8
    assert created["desc"] == "black-box key"
    assert created["roles"] == [{"orgId": server.org_id, "roleName": "ORG_MEMBER"}]

    # Shown once: afterwards only masked, in the single GET and in the list.
    one = server.call("GET", f"/orgs/{server.org_id}/apiKeys/{key.id}")
    assert one.status_code == 200, one.text
    assert one.json()["privateKey"] == masked(key.private_key)
    listed = server.call("GET", f"/orgs/{server.org_id}/apiKeys")
    assert listed.status_code == 200
    [mine] = [k for k in listed.json()["results"] if k["id"] == key.id]
    assert mine["privateKey"] == masked(key.private_key)
    for r in (one, listed):
        assert key.private_key not in r.text
        assert server.private_key not in r.text

    # An Organization Member sees no project.
    r = key.call("GET", "/groups")
    assert r.status_code == 200, r.text
    assert r.json()["totalCount"] == 0
    r = key.call("GET", f"/groups/{gid}")
    assert r.status_code == 404
    assert r.json()["errorCode"] == "GROUP_NOT_FOUND"


def test_add_group_api_key_with_read_only_role(server):
    """addGroupApiKey with the body Atlas documents: a bare array of {"roles": [...]}."""
    gid = server.create_project()
    user = unique_user("ro")
    server.create_user(gid, user)
    key, _ = create_org_key(server, roles=["ORG_MEMBER"])
    r = server.call("POST", f"/groups/{gid}/apiKeys/{key.id}", json=[{"roles": ["GROUP_READ_ONLY"]}])
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert key.call("GET", f"/groups/{gid}").status_code == 200
    r = key.call("GET", f"/groups/{gid}/databaseUsers")
    assert r.status_code == 200, r.text
    assert [u["username"] for u in r.json()["results"]] == [user]
    r = key.call("POST", certs_path(gid, user), json={"monthsUntilExpiration": 1})
    assert r.status_code == 401, r.text
    assert r.json()["errorCode"] == "USER_UNAUTHORIZED"
    r = server.call("GET", f"/groups/{gid}/apiKeys")
    [assigned] = [k for k in r.json()["results"] if k["id"] == key.id]
    assert {"groupId": gid, "roleName": "GROUP_READ_ONLY"} in assigned["roles"]


def test_project_roles_gate_operations_until_unassigned_and_deleted(server):
    gid = server.create_project()
    user = unique_user("ac")
    server.create_user(gid, user)
    # Assigned with Project Read Only by the operator command (independent of addGroupApiKey).
    out = dbcerts(
        "apikey", "create", *server.store_args, "--role", "ORG_MEMBER",
        "--project-role", f"{gid}:GROUP_READ_ONLY",
    )  # fmt: skip
    key = Key(server, json.loads(out.stdout))

    # Project Read Only: reads, cannot issue.
    assert key.call("GET", f"/groups/{gid}").status_code == 200
    r = key.call("GET", "/groups")
    assert [g["id"] for g in r.json()["results"]] == [gid]
    r = key.call("GET", f"/groups/{gid}/databaseUsers")
    assert r.status_code == 200, r.text
    assert [u["username"] for u in r.json()["results"]] == [user]
    assert key.call("GET", certs_path(gid, user)).status_code == 200
    r = key.call("POST", certs_path(gid, user), json={"monthsUntilExpiration": 1})
    assert r.status_code == 401, r.text
    assert r.json()["errorCode"] == "USER_UNAUTHORIZED"
    r = server.call("GET", f"/groups/{gid}/apiKeys")
    assert r.status_code == 200
    [assigned] = [k for k in r.json()["results"] if k["id"] == key.id]
    assert {"groupId": gid, "roleName": "GROUP_READ_ONLY"} in assigned["roles"]
    assert assigned["privateKey"] == masked(key.private_key)

    # Project Owner: issues certificates.
    r = server.call("PATCH", f"/groups/{gid}/apiKeys/{key.id}", json={"roles": ["GROUP_OWNER"]})
    assert r.status_code == 200, r.text
    roles = r.json()["roles"]
    assert {"groupId": gid, "roleName": "GROUP_OWNER"} in roles
    assert {"groupId": gid, "roleName": "GROUP_READ_ONLY"} not in roles
    r = key.call("POST", certs_path(gid, user), json={"monthsUntilExpiration": 1})
    assert r.status_code == 201, r.text
    split_pem(r.text)

    # Unassigned: the project is gone for the key again.
    r = server.call("DELETE", f"/groups/{gid}/apiKeys/{key.id}")
    assert r.status_code == 204, r.text
    r = key.call("GET", f"/groups/{gid}")
    assert r.status_code == 404
    assert r.json()["errorCode"] == "GROUP_NOT_FOUND"

    # Deleted: the key no longer authenticates.
    r = server.call("DELETE", f"/orgs/{server.org_id}/apiKeys/{key.id}")
    assert r.status_code == 204, r.text
    r = key.call("GET", "/groups")
    assert r.status_code == 401
    assert server.call("GET", f"/orgs/{server.org_id}/apiKeys/{key.id}").status_code == 404


def test_org_member_cannot_manage_keys(server):
    key, _ = create_org_key(server, roles=["ORG_MEMBER"])
    r = key.call("POST", f"/orgs/{server.org_id}/apiKeys", json={"desc": "escalate", "roles": ["ORG_OWNER"]})
    assert r.status_code == 401, r.text
    assert r.json()["errorCode"] == "USER_UNAUTHORIZED"
    r = key.call("PATCH", f"/orgs/{server.org_id}/apiKeys/{key.id}", json={"roles": ["ORG_OWNER"]})
    assert r.status_code == 401, r.text


def test_create_group_api_key_is_usable_on_that_project_only(server):
    gid = server.create_project()
    other = server.create_project()
    r = server.call("POST", f"/groups/{gid}/apiKeys", json={"desc": "project key", "roles": ["GROUP_OWNER"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert UUID.match(body["privateKey"])
    assert {"groupId": gid, "roleName": "GROUP_OWNER"} in body["roles"]
    assert {"orgId": server.org_id, "roleName": "ORG_MEMBER"} in body["roles"]
    key = Key(server, body)

    user = unique_user("gk")
    r = key.call(
        "POST",
        f"/groups/{gid}/databaseUsers",
        json={
            "databaseName": "$external",
            "username": user,
            "x509Type": "MANAGED",
            "roles": [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}],
            "groupId": gid,
        },
    )
    assert r.status_code == 201, r.text
    r = key.call("POST", certs_path(gid, user), json={"monthsUntilExpiration": 1})
    assert r.status_code == 201, r.text
    split_pem(r.text)
    r = key.call("GET", f"/groups/{other}")
    assert r.status_code == 404
    assert r.json()["errorCode"] == "GROUP_NOT_FOUND"
    r = key.call("GET", "/groups")
    assert [g["id"] for g in r.json()["results"]] == [gid]


# ------------------------------------------------------------------ IP access lists


def curl_from(source_ip: str, *args: str) -> tuple[str, str]:
    """(status code, body) of one curl transfer made from `source_ip`."""
    out = subprocess.run(
        ["curl", "-sS", "--interface", source_ip, "-w", "\n%{http_code}", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    body, code = out.stdout.rsplit("\n", 1)
    return code, body


def test_api_key_access_list(server):
    key, _ = create_org_key(server, roles=["ORG_OWNER"])
    base = f"/orgs/{server.org_id}/apiKeys/{key.id}/accessList"
    r = server.call("POST", base, json=[{"ipAddress": "127.0.0.2"}])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totalCount"] == 1
    [entry] = body["results"]
    assert entry["cidrBlock"] == "127.0.0.2/32"
    assert entry["ipAddress"] == "127.0.0.2"

    # From 127.0.0.1: refused.
    r = key.call("GET", "/groups")
    assert r.status_code == 403, r.text
    err = r.json()
    assert err["errorCode"] == "IP_ADDRESS_NOT_ON_WHITELIST"
    assert "127.0.0.1" in err["detail"]
    # From 127.0.0.2: curl and requests both get in.
    code, text = curl_from(
        "127.0.0.2", "--digest", "--user", f"{key.public_key}:{key.private_key}",
        "--header", f"Accept: {V2}", server.url("/groups"),
    )  # fmt: skip
    assert code == "200", text
    assert json.loads(text)["totalCount"] >= 0
    with session_from("127.0.0.2", key.session.auth) as s:
        r = key.call("GET", "/groups", session=s)
        assert r.status_code == 200, r.text
        # A key cannot remove the entry that admits its own request.
        r = key.call("DELETE", f"{base}/127.0.0.2%2F32", session=s)
        assert r.status_code == 400, r.text

    for spelled in ("127.0.0.2", "127.0.0.2%2F32"):
        r = server.call("GET", f"{base}/{spelled}")
        assert r.status_code == 200, r.text
        assert r.json()["cidrBlock"] == "127.0.0.2/32"
    assert server.call("GET", f"{base}/127.0.0.3").status_code == 404

    r = server.call("DELETE", f"{base}/127.0.0.2%2F32")
    assert r.status_code == 204, r.text
    assert server.call("GET", base).json()["totalCount"] == 0
    r = key.call("GET", "/groups")
    assert r.status_code == 200, r.text


def test_access_list_entry_by_block(server):
    key, _ = create_org_key(server, roles=["ORG_READ_ONLY"])
    base = f"/orgs/{server.org_id}/apiKeys/{key.id}/accessList"
    r = server.call("POST", base, json=[{"cidrBlock": "127.0.0.0/30"}])
    assert r.status_code == 200, r.text
    assert [e["cidrBlock"] for e in r.json()["results"]] == ["127.0.0.0/30"]
    assert key.call("GET", "/groups").status_code == 200  # 127.0.0.1 is in the block
    with session_from("127.0.0.5", key.session.auth) as s:
        r = key.call("GET", "/groups", session=s)
    assert r.status_code == 403
    assert r.json()["errorCode"] == "IP_ADDRESS_NOT_ON_WHITELIST"
    r = server.call("DELETE", f"{base}/127.0.0.0%2F30")
    assert r.status_code == 204, r.text


def test_service_account_access_list_applies_to_using_tokens(server):
    account = create_service_account(server)
    cid, secret = account["clientId"], account["secrets"][0]["secret"]
    base = f"/orgs/{server.org_id}/serviceAccounts/{cid}/accessList"
    r = server.call("POST", base, accept=SA_V, json=[{"ipAddress": "127.0.0.2"}])
    assert r.status_code == 200, r.text
    [entry] = r.json()["results"]
    assert entry["cidrBlock"] == "127.0.0.2/32"
    assert entry["ipAddress"] == "127.0.0.2"

    # The token can be created from anywhere...
    token = get_token(server, cid, secret)
    # ...but used only from the list.
    r = bearer_call(server, token, "GET", "/groups")
    assert r.status_code == 403, r.text
    assert r.json()["errorCode"] == "IP_ADDRESS_NOT_ON_WHITELIST"
    with session_from("127.0.0.2") as s:
        r = bearer_call(server, token, "GET", "/groups", session=s)
        assert r.status_code == 200, r.text
        # A token fetched from 127.0.0.2 is the same kind of token.
        assert bearer_call(server, get_token(server, cid, secret, session=s), "GET", "/groups", session=s).status_code == 200
    code, text = curl_from(
        "127.0.0.2", "--header", f"Authorization: Bearer {token}", "--header", f"Accept: {V2}", server.url("/groups")
    )
    assert code == "200", text

    r = server.call("GET", base, accept=SA_V)
    assert r.status_code == 200
    assert r.json()["totalCount"] == 1
    r = server.call("DELETE", f"{base}/127.0.0.2", accept=SA_V)
    assert r.status_code == 204, r.text
    r = bearer_call(server, token, "GET", "/groups")
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------ operator commands


def test_apikey_create_command(fresh_server):
    s = fresh_server
    gid = s.create_project()
    user = unique_user("op")
    s.create_user(gid, user)
    out = dbcerts("apikey", "create", *s.store_args, "--role", "ORG_READ_ONLY", "--description", "auditor")
    creds = json.loads(out.stdout)
    assert creds["orgId"] == s.org_id
    assert UUID.match(creds["privateKey"])
    key = Key(s, creds)
    r = key.call("GET", "/groups")
    assert r.status_code == 200, r.text
    assert [g["id"] for g in r.json()["results"]] == [gid]
    assert key.call("GET", certs_path(gid, user)).status_code == 200
    r = key.call("POST", certs_path(gid, user), json={"monthsUntilExpiration": 1})
    assert r.status_code == 401, r.text
    assert r.json()["errorCode"] == "USER_UNAUTHORIZED"
    r = key.call("POST", "/groups", json={"name": unique_user("no"), "orgId": s.org_id})
    assert r.status_code == 401, r.text
    # The key shows up, masked, in the API.
    r = s.call("GET", f"/orgs/{s.org_id}/apiKeys/{creds['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["privateKey"] == masked(creds["privateKey"])
    assert r.json()["desc"] == "auditor"

    bad = dbcerts("apikey", "create", *s.store_args, "--role", "ORG_SUPERUSER", check=False)
    assert bad.returncode != 0
    assert "ORG_SUPERUSER" in bad.stderr


def test_apikey_rotate_bootstrap(fresh_server):
    s = fresh_server
    old_public, old_private = s.public_key, s.private_key
    assert s.call("GET", "/groups").status_code == 200
    out = dbcerts("apikey", "rotate-bootstrap", *s.store_args)
    printed = json.loads(out.stdout)
    path = s.data_dir / "bootstrap-credentials.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    on_disk = json.loads(path.read_text())
    assert on_disk == printed
    assert on_disk["publicKey"] != old_public
    assert on_disk["privateKey"] != old_private
    assert on_disk["orgId"] == s.org_id

    with requests.Session() as old:
        old.auth = HTTPDigestAuth(old_public, old_private)
        r = old.get(s.url("/groups"), headers={"Accept": V2}, timeout=30)
    assert r.status_code == 401
    with requests.Session() as new:
        new.auth = HTTPDigestAuth(on_disk["publicKey"], on_disk["privateKey"])
        r = new.get(s.url("/groups"), headers={"Accept": V2}, timeout=30)
        assert r.status_code == 200, r.text
        # Same roles as before: Organization Owner.
        r = new.post(s.url("/groups"), headers={"Accept": V2}, json={"name": unique_user("rot"), "orgId": s.org_id})
        assert r.status_code == 201, r.text


# ------------------------------------------------------------------ audit log


def test_audit_log_records_and_detects_tampering(fresh_server, tmp_path):
    s = fresh_server
    gid = s.create_project()
    user = unique_user("au")
    s.create_user(gid, user)
    pem = split_pem(s.create_cert(gid, user))
    with requests.Session() as bad:
        bad.auth = HTTPDigestAuth(s.public_key, "wrong-" + s.private_key)
        assert bad.get(s.url("/groups"), headers={"Accept": V2}, timeout=30).status_code == 401
    with requests.Session() as unknown:
        unknown.auth = HTTPDigestAuth("zzzzzzzz", "00000000-0000-0000-0000-000000000000")
        assert unknown.get(s.url("/groups"), headers={"Accept": V2}, timeout=30).status_code == 401
    assert s.call("GET", "/groups").status_code == 200  # reads are not audited

    entries = audit_entries(s)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    actor = f"api-key:{s.public_key}"
    actions = [(e["action"], e["actor"], e["status"]) for e in entries]
    assert ("POST /api/atlas/v2/groups", actor, 201) in actions
    assert (f"POST /api/atlas/v2/groups/{gid}/databaseUsers", actor, 201) in actions
    # A certificate's issuance is its call's one audit entry (recorded with the certificate, in
    # one transaction): no second, generic entry for the same POST.
    assert (f"POST /api/atlas/v2/groups/{gid}/databaseUsers/{user}/certs", actor, 201) not in actions
    assert ("certificate.issued", actor, 201) in actions
    assert not any(e["action"].startswith("GET ") for e in entries)
    by_action = {e["action"]: e for e in entries}
    assert by_action[f"POST /api/atlas/v2/groups/{gid}/databaseUsers"]["projectId"] == gid
    assert all(e["sourceIp"] == "127.0.0.1" for e in entries if e["actor"] == actor)

    [issued] = [e for e in entries if e["action"] == "certificate.issued"]
    assert issued["actor"] == actor
    assert issued["projectId"] == gid
    assert issued["details"]["serial"] == pem.cert.serial_number
    assert issued["details"]["subject"] == f"CN={user}"
    assert issued["details"]["notAfter"] == int(pem.cert.not_valid_after_utc.timestamp())

    failed = [e for e in entries if e["action"] == "authentication.failed"]
    assert len(failed) == 2, failed
    # A known key is named; a name no key has is recorded as its length and a keyed hash (it
    # might have been a secret typed in the wrong field).
    claimed = {f["details"]["claimed"] for f in failed}
    assert s.public_key in claimed, claimed
    [other] = claimed - {s.public_key}
    assert re.fullmatch(r"unknown:len=8:h=[0-9a-f]{8}", other), claimed
    assert all(f["actor"] == "unauthenticated" and f["status"] == 401 for f in failed)
    text = "\n".join(json.dumps(e) for e in entries)
    assert s.private_key not in text

    out = dbcerts("audit", "verify", *s.store_args)
    assert "intact" in out.stdout
    assert f"{len(entries)} entries" in out.stdout

    # Tamper with the stopped server's database.
    assert s.stop() == 0
    victim = entries[len(entries) // 2]["seq"]
    [(original,)] = s.sql("SELECT details FROM audit_log WHERE seq = ?", victim)
    changed = s.sql("UPDATE audit_log SET details = ? WHERE seq = ? RETURNING seq", '{"forged":true}', victim)
    assert len(changed) == 1
    out = dbcerts("audit", "verify", *s.store_args, check=False)
    assert out.returncode != 0
    assert f"broken at entry {victim}" in out.stderr, out.stderr

    # Undone, the chain holds again (the check above saw the forgery, not something else).
    s.sql("UPDATE audit_log SET details = ? WHERE seq = ? RETURNING seq", original, victim)
    assert "intact" in dbcerts("audit", "verify", *s.store_args).stdout

    # Deleting a middle row is detected too.
    s.sql("DELETE FROM audit_log WHERE seq = ? RETURNING seq", victim)
    out = dbcerts("audit", "verify", *s.store_args, check=False)
    assert out.returncode != 0
    assert f"broken at entry {victim}" in out.stderr, out.stderr
    assert "missing" in out.stderr
