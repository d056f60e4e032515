"""Distinguished-name safety: no username can add an RDN to, or change the identity in, a
managed certificate's subject.

dbcerts refuses every MANAGED username that RFC 4514 would need to escape (`, + " \\ < > ; =`,
a leading `#`, leading or trailing space), control characters and invisible format characters,
with Atlas's `ATLAS_MANAGED_X509_NAME_INVALID`; what it accepts is printed by
`openssl x509 -subject -nameopt RFC2253` as exactly `CN=<username>` (with openssl's `\\XX`
escapes for bytes of multi-byte characters, which RFC 2253 allows). Why refusing rather than
escaping: docs/COMPATIBILITY.md ("MANAGED usernames").
"""

from __future__ import annotations

import subprocess
import urllib.parse

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from _certs_util import split_pem

REFUSED = [
    "alice,OU=admin",
    "a+CN=b",
    '"quoted"',
    "#lead",
    "trailing ",
    " leading",
    "back\\slash",
    "CN=alice",
    "semi;colon",
    "angle<bracket>",
    "new\nline",
    "tab\there",
    "nul\x00byte",
    "\u202ealice",  # right-to-left override: shows as "ecila"
    "ali\u200bce",  # zero-width space: looks like "alice"
    "\ufeffalice",  # byte-order mark
    "x" * 1025,
]

ACCEPTED = [
    "a" * 1024,
    "用" * 1024,  # 1,024 characters, 3,072 bytes of UTF-8
    "Zoë Ångström",
    "alice@example.com",
    "o'brien",
    "a/b",
    "émoji🙂",
]


def _user_body(gid: str, name: str) -> dict:
    return {
        "databaseName": "$external",
        "groupId": gid,
        "roles": [{"databaseName": "admin", "roleName": "readAnyDatabase"}],
        "username": name,
        "x509Type": "MANAGED",
    }


def _openssl_subject(pem: str, nameopt: str) -> str:
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-nameopt", nameopt],
        input=pem.encode(), capture_output=True, check=True,
    )
    return out.stdout.decode("utf-8").rstrip("\n")


def _escape_msb(name: str) -> str:
    """openssl's RFC2253 output: each byte of a multi-byte UTF-8 character as `\\XX`."""
    return "".join(c if ord(c) < 0x80 else "".join(f"\\{b:02X}" for b in c.encode()) for c in name)


@pytest.fixture(scope="module")
def gid(server):
    return server.create_project()


@pytest.mark.parametrize("name", REFUSED, ids=lambda n: repr(n[:20]))
def test_refused_username_creates_nothing(server, gid, name):
    r = server.call("POST", f"/groups/{gid}/databaseUsers", json=_user_body(gid, name))
    assert r.status_code == 400, r.text
    code = r.json()["errorCode"]
    if len(name) > 1024:
        # Atlas's length rule (CloudDatabaseUser.username.maxLength) answers first.
        assert code == "INVALID_ATTRIBUTE" and r.json()["parameters"] == ["username"]
    elif "\x00" in name:
        # A NUL never reaches the username rules: no JSON string dbcerts reads may hold one.
        assert code == "INVALID_JSON", r.text
    else:
        assert code == "ATLAS_MANAGED_X509_NAME_INVALID", r.text
        assert r.json()["parameters"] == [name]
    quoted = urllib.parse.quote(name, safe="")
    assert server.call("GET", f"/groups/{gid}/databaseUsers/%24external/{quoted}").status_code == 404


@pytest.mark.parametrize("name", ACCEPTED, ids=lambda n: repr(n[:20]))
def test_accepted_username_is_exactly_the_one_cn(server, gid, name, tmp_path):
    r = server.call("POST", f"/groups/{gid}/databaseUsers", json=_user_body(gid, name))
    assert r.status_code == 201, r.text
    quoted = urllib.parse.quote(name, safe="")
    r = server.call("POST", f"/groups/{gid}/databaseUsers/{quoted}/certs", json={"monthsUntilExpiration": 1})
    assert r.status_code == 201, r.text
    cert_pem = split_pem(r.text).cert_pem.decode()

    assert _openssl_subject(cert_pem, "RFC2253") == f"subject=CN={_escape_msb(name)}"
    assert _openssl_subject(cert_pem, "RFC2253,-esc_msb") == f"subject=CN={name}"
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert len(cert.subject.rdns) == 1
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [name]
    listed = server.call("GET", f"/groups/{gid}/databaseUsers/{quoted}/certs").json()["results"]
    assert [c["subject"] for c in listed] == [f"CN={name}"]
    # OpenSSL (what mongod verifies client certificates with) verifies it against the project CA,
    # CNs longer than RFC 5280's 64-character ub-common-name included (docs/COMPATIBILITY.md).
    ca = tmp_path / "ca.pem"
    ca.write_text(server.export_ca(gid))
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(cert_pem)
    verified = subprocess.run(
        ["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(ca), str(leaf)],
        capture_output=True, text=True,
    )
    assert verified.returncode == 0 and verified.stdout.strip().endswith(": OK"), verified
