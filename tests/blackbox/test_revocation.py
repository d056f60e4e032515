"""Certificate revocation (issue 17, section 1) against the real binary, over real HTTP, on the
backend of the pass (SQLite, then PostgreSQL).

- `POST /api/dbcerts/v1/groups/{groupId}/databaseUsers/{username}/certs/{serial}:revoke` with an
  RFC 5280 reason answers the certificate REVOKED with its time and reason; revoking again (even
  with another reason) answers the first time and reason, and audits nothing new. The Atlas
  list (v2 and v1.0) leaves the certificate out with its wire shape unchanged; the status list
  `GET /api/dbcerts/v1/.../certs` shows it with time and reason. Errors are Atlas's JSON: 404
  `CERTIFICATE_NOT_FOUND` (unknown serial, another user's, another project's), 400
  `INVALID_REVOCATION_REASON`, 404 `USERNAME_NOT_FOUND`.
- `POST .../databaseUsers/{username}/certs:revoke` revokes every unexpired certificate of the
  user, keeping an earlier revocation's time and reason.
- The revocation survives a restart (committed before the 2xx) and is in the hash-chained audit
  log (`dbcerts audit list`), one entry per certificate, with the caller as actor; the metric
  `dbcerts_certificates_revoked_total` counts it once.
- Roles: a Project Read Only key reads the status list but gets 401 on both revoke operations
  (nothing revoked); a Project Owner key revokes; a key without a role in the project sees 404.
- The CLI: `dbcerts dbusers certs revoke --username U --serial S --reason R`, `--all`, and
  `dbusers certs status`, as a table and as JSON.
- Deleting a MANAGED user (v2 and v1.0) revokes its unexpired certificates with reason
  cessationOfOperation; `revoke-on-user-delete = false` in the config file, or
  DBCERTS_REVOKE_ON_USER_DELETE=false, turns it off, and the flag `--revoke-on-user-delete` wins
  over the file. `cert-expiring-days` sets the EXPIRING window.
"""

from __future__ import annotations

import json
import re

import requests
from requests.auth import HTTPDigestAuth

from _certs_util import split_pem, unique_user
from conftest import V2
from test_access_control import audit_entries
from test_cli import CERTS_HEADER, login

EXT = "/api/dbcerts/v1"
REASONS = ("unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation")


def ext(server, path: str) -> str:
    return f"{server.root}{EXT}{path}"


def issue(server, gid: str, user: str) -> int:
    """A 3-month certificate for `user`; its serial. Three months are at least 89 days, so it is
    VALID (not EXPIRING within the default 30 days) on any date."""
    return split_pem(server.create_cert(gid, user, months=3)).cert.serial_number


def revoke(server, gid: str, user: str, serial, reason: str | None = "keyCompromise", session=None):
    body = {} if reason is None else {"reason": reason}
    s = session or server.session
    return s.post(ext(server, f"/groups/{gid}/databaseUsers/{user}/certs/{serial}:revoke"), json=body, timeout=60)


def revoke_all(server, gid: str, user: str, reason: str, session=None):
    s = session or server.session
    return s.post(ext(server, f"/groups/{gid}/databaseUsers/{user}/certs:revoke"), json={"reason": reason}, timeout=60)


def statuses(server, gid: str, user: str, session=None) -> dict[int, dict]:
    s = session or server.session
    r = s.get(ext(server, f"/groups/{gid}/databaseUsers/{user}/certs"), timeout=60)
    assert r.status_code == 200, r.text
    return {c["_id"]: c for c in r.json()["results"]}


def atlas_serials(server, gid: str, user: str, version: str = "v2") -> tuple[list[int], int]:
    r = server.call("GET", f"/groups/{gid}/databaseUsers/{user}/certs", version=version)
    assert r.status_code == 200, r.text
    body = r.json()
    for c in body["results"]:
        assert sorted(c) == ["_id", "createdAt", "groupId", "notAfter", "subject"], c
    return [c["_id"] for c in body["results"]], body["totalCount"]


def assert_atlas_error(r: requests.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"detail", "error", "errorCode", "parameters", "reason"}, body
    assert body["error"] == status and body["errorCode"] == code, body


def revocation_audits(server, gid: str) -> list[dict]:
    return [e for e in audit_entries(server)
            if e.get("projectId") == gid and str(e.get("action", "")).startswith("certificate.revoked")]


def revoked_counter(server, gid: str, reason: str) -> float:
    text = requests.get(server.metrics_url, timeout=30).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("dbcerts_certificates_revoked_total{") and f'group_id="{gid}"' in line \
                and f'reason="{reason}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def project_key(server, gid: str, role: str) -> requests.Session:
    """A new project API key holding `role` in `gid`, as a Digest session."""
    r = server.call("POST", f"/groups/{gid}/apiKeys", json={"desc": f"{role} key", "roles": [role]})
    assert r.status_code == 200, r.text
    s = requests.Session()
    s.auth = HTTPDigestAuth(r.json()["publicKey"], r.json()["privateKey"])
    return s


def test_revoke_one_idempotent_audited_listed_and_durable(fresh_server):
    server = fresh_server
    gid, other = server.create_project(), server.create_project()
    alice, bob = unique_user("al"), unique_user("bo")
    for g, u in ((gid, alice), (gid, bob), (other, alice)):
        server.create_user(g, u)
    a1, a2 = issue(server, gid, alice), issue(server, gid, alice)
    b1, o1 = issue(server, gid, bob), issue(server, other, alice)

    r = revoke(server, gid, alice, a1, "keyCompromise")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    first = r.json()
    assert first["_id"] == a1 and first["status"] == "REVOKED", first
    assert first["revocationReason"] == "keyCompromise" and first["subject"] == f"CN={alice}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["revokedAt"]), first

    # Again, with another reason: the first answer, byte for byte in meaning.
    again = revoke(server, gid, alice, a1, "superseded")
    assert again.status_code == 200 and again.json() == first, again.text
    assert len(revocation_audits(server, gid)) == 1
    assert revoked_counter(server, gid, "keyCompromise") == 1

    # The Atlas list leaves it out (both versions); the status list shows it.
    assert atlas_serials(server, gid, alice) == ([a2], 1)
    assert atlas_serials(server, gid, alice, "v1.0") == ([a2], 1)
    st = statuses(server, gid, alice)
    assert st[a1]["status"] == "REVOKED" and st[a1]["revokedAt"] == first["revokedAt"]
    assert st[a2]["status"] == "VALID" and "revokedAt" not in st[a2], st[a2]

    # Default reason.
    r = revoke(server, gid, alice, a2, None)
    assert r.status_code == 200 and r.json()["revocationReason"] == "unspecified", r.text

    # Errors in Atlas's format; nothing revoked by any of them.
    for user, serial in ((alice, b1), (bob, a1), (alice, o1), (alice, 12345), (alice, "abc"), (alice, -3)):
        assert_atlas_error(revoke(server, gid, user, serial), 404, "CERTIFICATE_NOT_FOUND")
    for reason in ("KeyCompromise", "cACompromise", "removeFromCRL", "privilegeWithdrawn", ""):
        assert_atlas_error(revoke(server, gid, bob, b1, reason), 400, "INVALID_REVOCATION_REASON")
    r = server.session.post(ext(server, f"/groups/{gid}/databaseUsers/{bob}/certs/{b1}:revoke"),
                            data="{", headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 400 and r.json()["errorCode"], r.text
    assert_atlas_error(revoke_all(server, gid, unique_user("no"), "superseded"), 404, "USERNAME_NOT_FOUND")
    assert statuses(server, gid, bob)[b1]["status"] == "VALID"
    assert statuses(server, other, alice)[o1]["status"] == "VALID"

    # The audit log: one entry per revocation, the caller as actor, the serial and reason.
    audits = revocation_audits(server, gid)
    assert len(audits) == 2, audits
    details = [json.loads(e["details"]) if isinstance(e["details"], str) else e["details"] for e in audits]
    assert [(d["serial"], d["reason"]) for d in details] == [(a1, "keyCompromise"), (a2, "unspecified")]
    assert all(server.public_key in e["actor"] and e["target"] == alice for e in audits), audits

    # Committed before the 2xx: a restart finds both, unchanged.
    assert server.stop() == 0
    server.start()
    st = statuses(server, gid, alice)
    assert (st[a1]["status"], st[a1]["revokedAt"], st[a1]["revocationReason"]) == \
        ("REVOKED", first["revokedAt"], "keyCompromise")
    assert st[a2]["revocationReason"] == "unspecified"
    assert atlas_serials(server, gid, alice) == ([], 0)


def test_revoke_all_keeps_earlier_revocations(server):
    gid, user = server.create_project(), unique_user("ca")
    server.create_user(gid, user)
    serials = [issue(server, gid, user) for _ in range(3)]
    assert revoke(server, gid, user, serials[1], "superseded").status_code == 200
    r = revoke_all(server, gid, user, "affiliationChanged")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totalCount"] == 3
    got = {c["_id"]: c["revocationReason"] for c in body["results"]}
    assert got == {serials[0]: "affiliationChanged", serials[1]: "superseded", serials[2]: "affiliationChanged"}
    assert atlas_serials(server, gid, user) == ([], 0)
    # Again: nothing new.
    again = revoke_all(server, gid, user, "keyCompromise")
    assert again.status_code == 200 and again.json() == body, again.text
    assert len(revocation_audits(server, gid)) == 3
    # A user with no certificate left to revoke: 200, empty.
    empty = unique_user("em")
    server.create_user(gid, empty)
    r = revoke_all(server, gid, empty, "superseded")
    assert r.status_code == 200 and r.json() == {"results": [], "totalCount": 0}, r.text


def test_roles_owner_revokes_read_only_reads_outsiders_see_nothing(server):
    gid, user = server.create_project(), unique_user("ro")
    server.create_user(gid, user)
    serial = issue(server, gid, user)
    reader = project_key(server, gid, "GROUP_READ_ONLY")
    owner = project_key(server, gid, "GROUP_OWNER")
    outsider = project_key(server, server.create_project(), "GROUP_OWNER")

    assert statuses(server, gid, user, session=reader)[serial]["status"] == "VALID"
    assert_atlas_error(revoke(server, gid, user, serial, session=reader), 401, "USER_UNAUTHORIZED")
    assert_atlas_error(revoke_all(server, gid, user, "superseded", session=reader), 401, "USER_UNAUTHORIZED")
    for call in (lambda: revoke(server, gid, user, serial, session=outsider),
                 lambda: revoke_all(server, gid, user, "superseded", session=outsider),
                 lambda: outsider.get(ext(server, f"/groups/{gid}/databaseUsers/{user}/certs"), timeout=60)):
        assert_atlas_error(call(), 404, "GROUP_NOT_FOUND")
    r = requests.post(ext(server, f"/groups/{gid}/databaseUsers/{user}/certs/{serial}:revoke"), json={}, timeout=60)
    assert r.status_code == 401, r.text
    assert statuses(server, gid, user)[serial]["status"] == "VALID"

    r = revoke(server, gid, user, serial, "keyCompromise", session=owner)
    assert r.status_code == 200 and r.json()["status"] == "REVOKED", r.text


def test_cli_revoke_serial_all_and_status(server, tmp_path):
    gid, user = server.create_project(), unique_user("cl")
    server.create_user(gid, user)
    s1, s2, s3 = (issue(server, gid, user) for _ in range(3))
    cli = login(server, tmp_path / "home", gid=gid)

    out = cli.ok("dbusers", "certs", "revoke", "--username", user, "--serial", s1, "--reason", "keyCompromise")
    lines = [" ".join(line.split()) for line in out.strip().splitlines()]
    assert lines[0] == "SERIAL STATUS NOT AFTER REVOKED AT REASON SUBJECT", out
    assert lines[1].startswith(f"{s1} REVOKED ") and " keyCompromise CN=" in lines[1], out
    # The Atlas list, through the CLI, no longer has it.
    listed = cli.ok("dbusers", "certs", "list", user)
    assert " ".join(listed.splitlines()[0].split()) == CERTS_HEADER
    assert str(s1) not in listed and str(s2) in listed, listed

    # Idempotent through the CLI too.
    again = cli.json_out("dbusers", "certs", "revoke", "--username", user, "--serial", s1, "--reason", "superseded")
    assert again["revocationReason"] == "keyCompromise", again

    revoked = cli.json_out("dbusers", "certs", "revoke", "--username", user, "--all", "--reason", "superseded")
    assert {c["_id"]: c["revocationReason"] for c in revoked} == \
        {s1: "keyCompromise", s2: "superseded", s3: "superseded"}, revoked

    page = cli.json_out("dbusers", "certs", "status", user)
    assert page["totalCount"] == 3 and {c["status"] for c in page["results"]} == {"REVOKED"}, page
    table = cli.ok("dbusers", "certs", "status", user)
    rows = [line.split() for line in table.strip().splitlines()[1:]]
    assert sorted((int(r[0]), r[1]) for r in rows) == sorted((s, "REVOKED") for s in (s1, s2, s3)), table

    # Errors: the server's (exit 4 for not found) or clap's (usage, exit 2); nothing printed to stdout.
    p = cli.expect(4, "dbusers", "certs", "revoke", "--username", user, "--serial", "12345")
    assert "CERTIFICATE_NOT_FOUND" in p.stderr and p.stdout == "", p.stderr
    for args in (["--username", user],
                 ["--username", user, "--all", "--serial", s1],
                 ["--username", user, "--all", "--reason", "cACompromise"]):
        p = cli.expect(2, "dbusers", "certs", "revoke", *args)
        assert p.stdout == "", p.stdout


def delete_user(server, gid: str, user: str, version: str) -> None:
    r = server.call("DELETE", f"/groups/{gid}/databaseUsers/$external/{user}", version=version)
    assert r.status_code == 204, r.text


def test_deleting_a_managed_user_revokes_its_certificates(server):
    gid = server.create_project()
    for version in ("v2", "v1.0"):
        user, keeper = unique_user("de"), unique_user("ke")
        server.create_user(gid, user)
        server.create_user(gid, keeper)
        serials = [issue(server, gid, user) for _ in range(2)]
        kept = issue(server, gid, keeper)
        delete_user(server, gid, user, version)
        st = statuses(server, gid, user)
        assert {st[s]["status"] for s in serials} == {"REVOKED"}, (version, st)
        assert {st[s]["revocationReason"] for s in serials} == {"cessationOfOperation"}
        assert statuses(server, gid, keeper)[kept]["status"] == "VALID"
        actions = [e["action"] for e in revocation_audits(server, gid) if e["target"] == user]
        assert actions == ["certificate.revoked.user_deleted"] * 2, actions
    # A SCRAM user's deletion revokes nothing (it has no certificates of its own to revoke).
    scram = unique_user("sc")
    body = {"databaseName": "admin", "username": scram, "password": "changeme123",
            "roles": [{"databaseName": "admin", "roleName": "read"}], "groupId": gid}
    assert server.call("POST", f"/groups/{gid}/databaseUsers", json=body).status_code == 201
    assert server.call("DELETE", f"/groups/{gid}/databaseUsers/admin/{scram}").status_code == 204


def test_revoke_on_user_delete_can_be_switched_off(make_server, monkeypatch):
    off = make_server(revoke_on_user_delete=False)
    # The flag wins over the file.
    on_again = make_server("--revoke-on-user-delete=true", revoke_on_user_delete=False)
    # The variable alone (the servers inherit the test's environment).
    monkeypatch.setenv("DBCERTS_REVOKE_ON_USER_DELETE", "false")
    off_by_env = make_server()
    for server, want in ((off, "VALID"), (on_again, "REVOKED"), (off_by_env, "VALID")):
        gid, user = server.create_project(), unique_user("sw")
        server.create_user(gid, user)
        serial = issue(server, gid, user)
        delete_user(server, gid, user, "v2")
        assert statuses(server, gid, user)[serial]["status"] == want
        # Revocation by hand still works on a deleted user's certificates.
        r = revoke(server, gid, user, serial, "cessationOfOperation")
        assert r.status_code == 200 and r.json()["status"] == "REVOKED", r.text


def test_expiring_window_from_the_config_file(make_server):
    """`cert-expiring-days = 400`: a 3-month certificate is EXPIRING (with the default 30 days it
    is VALID, as the tests above show)."""
    server = make_server(cert_expiring_days=400)
    gid, user = server.create_project(), unique_user("ex")
    server.create_user(gid, user)
    serial = issue(server, gid, user)
    assert statuses(server, gid, user)[serial]["status"] == "EXPIRING"
