"""Secrets never leak: a realistic session on a fresh server logging at debug level, then a
search for every secret it handed out (API private keys, service-account secrets, bearer
tokens, issued certificates' private keys) in the server's output, the audit log, later API
responses and the raw bytes of the SQLite files.
"""

from __future__ import annotations

import base64
import collections
import json
import pathlib
import re
import subprocess

import requests
from requests.auth import HTTPDigestAuth

from _certs_util import split_pem, unique_user
from conftest import SA_V, V2, bearer_call, create_service_account, dbcerts_bin, get_token, remember_secret
from test_digest_auth import digest_header


def dbcerts(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([dbcerts_bin(), *args], capture_output=True, text=True, timeout=120, check=True)


class Secrets:
    """Named secret strings (and raw byte strings) to look for."""

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}

    def add(self, name: str, value: str | bytes) -> None:
        raw = value.encode() if isinstance(value, str) else value
        assert len(raw) >= 16, f"{name} is too short to search for safely"
        self.items[name] = raw

    def add_pem_key(self, name: str, pem) -> None:
        self.add(f"{name} (PEM body)", pem.key_b64)
        for i, line in enumerate(pem.key_b64_lines):
            if len(line) >= 40:
                self.add(f"{name} (PEM line {i})", line)
        self.add(f"{name} (PKCS#8 DER)", pem.key_der)
        scalar = pem.key.private_numbers().private_value
        self.add(f"{name} (private scalar)", scalar.to_bytes((scalar.bit_length() + 7) // 8, "big"))

    def found_in(self, blob: bytes) -> list[str]:
        return [name for name, raw in self.items.items() if raw in blob]

    def assert_absent(self, where: str, blob: bytes | str, *, allow: tuple[str, ...] = ()) -> None:
        if isinstance(blob, str):
            blob = blob.encode()
        leaked = [n for n in self.found_in(blob) if not n.startswith(allow)]
        assert not leaked, f"secrets found in {where}: {leaked}"


def test_no_secret_appears_anywhere_it_should_not(make_server, monkeypatch, tmp_path):
    monkeypatch.setenv("DBCERTS_LOG", "debug")
    s = make_server()
    secrets = Secrets()
    secrets.add("bootstrap private key", s.private_key)

    # ---- a realistic session -------------------------------------------------------------
    gid = s.create_project()
    user = unique_user("leak")
    s.create_user(gid, user)
    secrets.add_pem_key("cert 1 key", split_pem(s.create_cert(gid, user)))

    r = s.call("POST", f"/orgs/{s.org_id}/apiKeys", json={"desc": "leak test", "roles": ["ORG_MEMBER"]})
    assert r.status_code == 200, r.text
    api_key = r.json()
    secrets.add("API private key", api_key["privateKey"])
    r = s.call("PATCH", f"/groups/{gid}/apiKeys/{api_key['id']}", json={"roles": ["GROUP_OWNER"]})
    assert r.status_code == 200, r.text
    with requests.Session() as k:
        k.auth = HTTPDigestAuth(api_key["publicKey"], api_key["privateKey"])
        r = k.post(s.url(f"/groups/{gid}/databaseUsers/{user}/certs"), headers={"Accept": V2},
                   json={"monthsUntilExpiration": 2}, timeout=60)  # fmt: skip
        assert r.status_code == 201, r.text
        secrets.add_pem_key("cert 2 key", split_pem(r.text))
        # v1.0, pretty-printed
        r = k.post(s.url(f"/groups/{gid}/databaseUsers/{user}/certs?pretty=true", "v1.0"),
                   json={"monthsUntilExpiration": 1}, timeout=60)  # fmt: skip
        assert r.status_code == 201, r.text
        secrets.add_pem_key("cert 3 key", split_pem(r.text))

    created = dbcerts("apikey", "create", *s.store_args, "--role", "ORG_READ_ONLY")
    op = json.loads(created.stdout)
    secrets.add("operator API private key", op["privateKey"])
    secrets.assert_absent("apikey create log (stderr)", created.stderr)
    with requests.Session() as k:
        k.auth = HTTPDigestAuth(op["publicKey"], op["privateKey"])
        assert k.get(s.url("/groups"), headers={"Accept": V2}, timeout=30).status_code == 200

    account = create_service_account(s, roles=["ORG_OWNER"])
    cid = account["clientId"]
    first_secret = account["secrets"][0]["secret"]
    secrets.add("SA secret 1", first_secret)
    r = s.call("POST", f"/orgs/{s.org_id}/serviceAccounts/{cid}/secrets", accept=SA_V, json={"secretExpiresAfterHours": 8})
    assert r.status_code == 201, r.text
    second_secret = r.json()["secret"]
    secrets.add("SA secret 2", second_secret)

    token_basic = get_token(s, cid, first_secret)
    r = requests.post(
        f"{s.root}/api/oauth/token",
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": second_secret},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    token_form = r.json()["access_token"]
    revoked = get_token(s, cid, first_secret)
    for name, token in (("token 1", token_basic), ("token 2", token_form), ("revoked token", revoked)):
        secrets.add(name, token)
        secrets.add(f"{name} signature", token.rsplit(".", 1)[1])
    r = bearer_call(s, token_basic, "POST", f"/groups/{gid}/databaseUsers/{user}/certs", json={"monthsUntilExpiration": 3})
    assert r.status_code == 201, r.text
    secrets.add_pem_key("cert 4 key", split_pem(r.text))
    assert bearer_call(s, token_form, "GET", f"/groups/{gid}/databaseUsers/{user}/certs").status_code == 200
    r = requests.post(f"{s.root}/api/oauth/revoke", auth=(cid, first_secret), data={"token": revoked}, timeout=30)
    assert r.status_code == 200
    assert bearer_call(s, revoked, "GET", "/groups").status_code == 401

    # Failures that carry secrets: a wrong SA secret (a near miss of the real one), a wrong
    # API private key, a bearer token from the revoked set.
    near_miss = second_secret[:-4] + ("AAAA" if not second_secret.endswith("AAAA") else "BBBB")
    secrets.add("wrong SA secret", near_miss)
    r = requests.post(f"{s.root}/api/oauth/token", auth=(cid, near_miss), data={"grant_type": "client_credentials"}, timeout=30)
    assert r.status_code == 401
    wrong_key = "11111111-2222-3333-4444-555555555555"
    secrets.add("wrong API private key", wrong_key)
    with requests.Session() as k:
        k.auth = HTTPDigestAuth(api_key["publicKey"], wrong_key)
        assert k.get(s.url("/groups"), headers={"Accept": V2}, timeout=30).status_code == 401

    # ---- secrets sent as the claimed identity ----------------------------------------------
    # A client that puts a secret where its name goes: an API private key or a service-account
    # secret as the Digest username, as the OAuth client_id (Basic and form), on every path that
    # refuses them. The server records such a claim as its length and a keyed hash only.
    misplaced = {
        "API private key": api_key["privateKey"],
        "operator API private key": op["privateKey"],
        "SA secret 2": second_secret,
    }
    uri = "/api/atlas/v2/groups"
    refusals = []
    for secret in misplaced.values():
        remember_secret(secret)  # and so searched for in every server log of the run
        with requests.Session() as k:  # a wrong response (the path unknown names take)
            k.auth = HTTPDigestAuth(secret, secret)
            refusals.append(k.get(s.url("/groups"), headers={"Accept": V2}, timeout=30))
        nonce = re.search(r'nonce="([^"]+)"', refusals[-1].headers["WWW-Authenticate"]).group(1)
        for header in (
            digest_header("GET", uri, secret, secret, "AAAAAGsFRBVNvgEKQfo827AIqU/MjaFf"),  # not our nonce
            digest_header("GET", uri + "?other", secret, secret, nonce),  # uri of another request
            f'Digest username="{secret}"',  # malformed
            f"Bearer {secret}",
        ):
            refusals.append(requests.get(f"{s.root}{uri}", headers={"Accept": V2, "Authorization": header}, timeout=30))
        grant = {"grant_type": "client_credentials"}
        refusals += [
            requests.post(f"{s.root}/api/oauth/token", auth=(secret, secret), data=grant, timeout=30),
            requests.post(f"{s.root}/api/oauth/token", data={**grant, "client_id": secret, "client_secret": first_secret},
                          timeout=30),  # fmt: skip
            requests.post(f"{s.root}/api/oauth/revoke", auth=(secret, first_secret), data={"token": token_form}, timeout=30),
        ]
    for r in refusals:
        assert r.status_code == 401, f"{r.request.method} {r.url}: {r.status_code}"
        secrets.assert_absent(f"refused {r.request.method} {r.url}", r.content + json.dumps(dict(r.headers)).encode())

    # The failures are in the audit log: known principals by name, the rest as `unknown:`.
    entries = [json.loads(line) for line in dbcerts("audit", "list", *s.store_args, "--json").stdout.splitlines()]
    failed = [e["details"] for e in entries if e["action"] == "authentication.failed"]
    claims = {(f["scheme"], f["claimed"]) for f in failed}
    assert ("digest", api_key["publicKey"]) in claims, "the wrong API private key's failure names its key"
    assert ("oauth", cid) in claims, "the wrong SA secret's failure names its account"
    unknown = re.compile(r"unknown:len=(\d+):h=([0-9a-f]{8})")
    for f in failed:
        assert f["claimed"] in ("", api_key["publicKey"], cid) or unknown.fullmatch(f["claimed"]), f
    for name, secret in misplaced.items():
        shown = {c for scheme, c in claims if c.startswith(f"unknown:len={len(secret)}:")}
        assert shown, f"no failure recorded for the {name} sent as a name"
    hashes = collections.defaultdict(set)
    for scheme, c in claims:
        if m := unknown.fullmatch(c):
            hashes[m.group(2)].add(scheme)
    # One text, one hash, whichever scheme it came through: the three secrets give three.
    assert len(hashes) == len(misplaced), hashes
    assert all(schemes == {"digest", "oauth"} for schemes in hashes.values()), hashes

    # ---- later GET/list responses ----------------------------------------------------------
    reads = [
        s.call("GET", f"/orgs/{s.org_id}/apiKeys"),
        s.call("GET", f"/orgs/{s.org_id}/apiKeys/{api_key['id']}"),
        s.call("GET", f"/orgs/{s.org_id}/apiKeys/{op['id']}?pretty=true"),
        s.call("GET", f"/orgs/{s.org_id}/apiKeys/{api_key['id']}/accessList"),
        s.call("GET", f"/groups/{gid}/apiKeys"),
        s.call("GET", f"/orgs/{s.org_id}/serviceAccounts", accept=SA_V),
        s.call("GET", f"/orgs/{s.org_id}/serviceAccounts/{cid}", accept=SA_V),
        s.call("GET", f"/groups/{gid}/databaseUsers"),
        s.call("GET", f"/groups/{gid}/databaseUsers/{user}/certs"),
        s.call("GET", "/groups"),
        s.call("GET", "/groups", version="v1.0"),
        bearer_call(s, token_basic, "GET", f"/orgs/{s.org_id}/serviceAccounts/{cid}", accept=SA_V),
    ]
    for r in reads:
        assert r.status_code == 200, f"{r.url}: {r.text}"
        secrets.assert_absent(f"GET {r.url}", r.content + json.dumps(dict(r.headers)).encode())

    # ---- the audit log -------------------------------------------------------------------
    audit_json = dbcerts("audit", "list", *s.store_args, "--json")
    assert "certificate.issued" in audit_json.stdout and "oauth.token.issued" in audit_json.stdout
    secrets.assert_absent("audit list --json", audit_json.stdout + audit_json.stderr)
    audit_text = dbcerts("audit", "list", *s.store_args)
    secrets.assert_absent("audit list", audit_text.stdout + audit_text.stderr)

    # ---- the database files, while running and after a clean stop ------------------------------
    running = s.database_bytes()
    assert "dbcerts.db" in running or "pg_dump" in running
    for name, blob in running.items():
        secrets.assert_absent(f"{name} (server running)", blob)

    assert s.stop() == 0
    for name, blob in s.database_bytes().items():
        secrets.assert_absent(f"{name} (server stopped)", blob)

    # ---- the server's own output (stderr log file and whatever followed on stdout) -------
    log = s.log_path.read_bytes()
    stdout_rest = s.proc.stdout.read()
    assert b"DEBUG" in log, "the server did not log at debug level"
    assert cid.encode() in log or b"/api/oauth/token" in log, "the session is not in the log"
    secrets.assert_absent("server log (stderr)", log)
    secrets.assert_absent("server stdout", stdout_rest)

    # ---- the bootstrap private key lives only in bootstrap-credentials.json ------------------
    holders = []
    for p in sorted(pathlib.Path(s.data_dir).rglob("*")):
        if p.is_file():
            blob = p.read_bytes()
            if secrets.items["bootstrap private key"] in blob:
                holders.append(p.name)
            if p.name != "bootstrap-credentials.json":
                # Nothing else on disk holds any secret either (the server log included).
                secrets.assert_absent(str(p), blob)
    assert holders == ["bootstrap-credentials.json"], holders
    # Not even base64-encoded.
    b64 = base64.b64encode(s.private_key.encode())
    for p in pathlib.Path(s.data_dir).rglob("*"):
        if p.is_file() and p.name != "bootstrap-credentials.json":
            assert b64 not in p.read_bytes(), p
