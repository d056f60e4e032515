"""The OCSP responder (issue 17, section 3) against the real binary, with real `openssl ocsp`.

- `openssl ocsp -issuer CA -cert ... -url .../api/dbcerts/v1/ocsp/<groupId>` (HTTP POST, with a
  nonce) says `good` for a valid leaf, `revoked` with the reason and time for a revoked one,
  `unknown` for a serial the CA never issued, and "Response verify OK" against the project CA.
- The same over HTTP GET (RFC 6960 appendix A.1), the request built by pyca/cryptography with a
  SHA-256 CertID, the response read back by openssl.
- No credentials are needed (OCSP clients send none); every answer is HTTP 200
  `application/ocsp-response`: malformedRequest for garbage, unauthorized for an unknown
  project or another project's CA, tryLater past the per-address rate limit.
- Leaves carry an AIA OCSP URL only when `ocsp-url` is configured; the default profile has
  exactly Atlas's two extensions.
- Many nodes (PostgreSQL pass only): a certificate revoked while node A serves is answered
  `revoked` by node B at once.

Certificates are revoked through the revocation API (`POST /api/dbcerts/v1/groups/{groupId}/
databaseUsers/{username}/certs/{serial}:revoke`), as an operator would; the OCSP answer must carry
the time and reason that API answered.
"""

from __future__ import annotations

import base64
import datetime as dt
import pathlib
import re
import subprocess
import urllib.parse

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from _certs_util import openssl, split_pem, unique_user
from conftest import BACKEND

RESPONSE_TYPE = "application/ocsp-response"


def responder(root: str, gid: str) -> str:
    return f"{root}/api/dbcerts/v1/ocsp/{gid}"


def issue(server, gid: str, tmp: pathlib.Path, name: str) -> tuple[pathlib.Path, x509.Certificate]:
    user = unique_user("oc")
    server.create_user(gid, user)
    pem = split_pem(server.create_cert(gid, user, months=1))
    path = tmp / f"{name}.pem"
    path.write_bytes(pem.cert_pem)
    return path, pem.cert


def project_with_ca(server, tmp: pathlib.Path) -> tuple[str, pathlib.Path]:
    gid = server.create_project()
    ca = tmp / f"ca-{gid}.pem"
    # The first certificate creates the CA; export it only after.
    return gid, ca


def export_ca(server, gid: str, path: pathlib.Path) -> pathlib.Path:
    path.write_text(server.export_ca(gid))
    return path


def revoke_by_api(root: str, session: requests.Session, gid: str, cert: x509.Certificate, reason: str) -> int:
    """Revokes `cert` through the revocation API; returns the revocation time it answered."""
    user = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    r = session.post(f"{root}/api/dbcerts/v1/groups/{gid}/databaseUsers/{user}/certs/{cert.serial_number}:revoke",
                     json={"reason": reason}, timeout=60)
    assert r.status_code == 200 and r.json()["revocationReason"] == reason, r.text
    at = dt.datetime.strptime(r.json()["revokedAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    return int(at.timestamp())


def openssl_ocsp(ca: pathlib.Path, url: str, *args: str) -> tuple[int, str]:
    out = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(ca), "-CAfile", str(ca), "-url", url, "-timeout", "30", *args],
        capture_output=True, text=True, timeout=60,
    )
    return out.returncode, out.stdout + out.stderr


def openssl_time(epoch: int) -> str:
    """`Mar  4 05:06:07 2026 GMT`, as openssl prints an ASN.1 time."""
    d = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return f"{d:%b} {d.day:2d} {d:%H:%M:%S} {d.year} GMT"


def test_openssl_says_good_revoked_and_unknown_with_a_verified_signature(server, tmp_path):
    gid, ca = project_with_ca(server, tmp_path)
    good, good_cert = issue(server, gid, tmp_path, "good")
    bad, bad_cert = issue(server, gid, tmp_path, "revoked")
    export_ca(server, gid, ca)
    revoked_at = revoke_by_api(server.root, server.session, gid, bad_cert, "keyCompromise")
    never = 0x7A11  # random 63-bit serials: never this one
    code, text = openssl_ocsp(ca, responder(server.root, gid),
                              "-cert", str(good), "-cert", str(bad), "-serial", hex(never))
    assert code == 0, text
    assert "Response verify OK" in text, text
    assert f"{good}: good" in text, text
    assert f"{bad}: revoked" in text, text
    assert f"{hex(never)}: unknown" in text, text
    assert "Reason: keyCompromise" in text, text
    assert f"Revocation Time: {openssl_time(revoked_at)}" in text, text
    assert "Nonce Verify error" not in text and "WARNING" not in text, text
    # Without a nonce too.
    code, text = openssl_ocsp(ca, responder(server.root, gid), "-no_nonce", "-cert", str(good))
    assert code == 0 and "Response verify OK" in text and f"{good}: good" in text, text


def test_revocation_reason_and_time_are_what_the_store_holds(server, tmp_path):
    gid, ca = project_with_ca(server, tmp_path)
    leaf, cert = issue(server, gid, tmp_path, "leaf")
    export_ca(server, gid, ca)
    revoked_at = revoke_by_api(server.root, server.session, gid, cert, "cessationOfOperation")
    code, text = openssl_ocsp(ca, responder(server.root, gid), "-cert", str(leaf), "-resp_text")
    assert code == 0 and "Response verify OK" in text, text
    assert "Revocation Reason: cessationOfOperation (0x5)" in text, text
    assert f"Revocation Time: {openssl_time(revoked_at)}" in text, text
    # The responder is the CA, named by key, and thisUpdate/nextUpdate are an hour apart by default.
    assert re.search(r"Responder Id: [0-9A-F]{40}", text), text
    this = re.search(r"This Update: (.+ GMT)", text).group(1)
    nxt = re.search(r"Next Update: (.+ GMT)", text).group(1)
    fmt = "%b %d %H:%M:%S %Y GMT"
    parse = lambda s: dt.datetime.strptime(re.sub(r"\s+", " ", s), fmt)
    assert parse(nxt) - parse(this) == dt.timedelta(hours=1)


def test_get_with_a_sha256_cert_id(server, tmp_path):
    gid, ca = project_with_ca(server, tmp_path)
    leaf, cert = issue(server, gid, tmp_path, "leaf")
    export_ca(server, gid, ca)
    issuer = x509.load_pem_x509_certificate(ca.read_bytes())
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    der = req.public_bytes(serialization.Encoding.DER)
    encoded = urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    r = requests.get(f"{responder(server.root, gid)}/{encoded}", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == RESPONSE_TYPE
    assert "max-age=3600" in r.headers["Cache-Control"]
    resp = ocsp.load_der_ocsp_response(r.content)
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert resp.serial_number == cert.serial_number
    assert isinstance(resp.hash_algorithm, hashes.SHA256)
    # openssl checks the signature of the same bytes against the CA.
    (tmp_path / "resp.der").write_bytes(r.content)
    (tmp_path / "req.der").write_bytes(der)
    out = openssl("ocsp", "-reqin", str(tmp_path / "req.der"), "-respin", str(tmp_path / "resp.der"),
                  "-CAfile", str(ca), "-resp_text")
    assert out.returncode == 0 and "Response verify OK" in out.stdout + out.stderr, out.stdout + out.stderr
    # Base64 with its '/' left unescaped and no padding is read too.
    raw = base64.b64encode(der).decode().rstrip("=")
    r = requests.get(f"{responder(server.root, gid)}/{raw.replace('+', '%2B')}", timeout=30)
    assert ocsp.load_der_ocsp_response(r.content).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_failures_are_ocsp_statuses_not_atlas_json(server, tmp_path):
    gid, ca = project_with_ca(server, tmp_path)
    leaf, _ = issue(server, gid, tmp_path, "leaf")
    export_ca(server, gid, ca)
    url = responder(server.root, gid)

    def status_of(r: requests.Response) -> ocsp.OCSPResponseStatus:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == RESPONSE_TYPE
        assert r.headers["Cache-Control"] == "no-store"
        return ocsp.load_der_ocsp_response(r.content).response_status

    post = lambda u, body, ct="application/ocsp-request": requests.post(u, data=body, headers={"Content-Type": ct}, timeout=30)
    malformed = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert status_of(post(url, b"\x30\x03garbage")) == malformed
    assert status_of(post(url, b"")) == malformed
    assert status_of(post(url, b"\x30" * 9000)) == malformed  # over the 8 KiB limit
    assert status_of(requests.get(f"{url}/not*base64", timeout=30)) == malformed
    assert status_of(requests.get(url, timeout=30)) == malformed  # GET without a request
    issuer = x509.load_pem_x509_certificate(ca.read_bytes())
    cert = x509.load_pem_x509_certificate(leaf.read_bytes())
    good_req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    der = good_req.public_bytes(serialization.Encoding.DER)
    assert status_of(post(url, der, "application/json")) == malformed
    # Unknown project, malformed project id, another project's CA: unauthorized, alike.
    unauthorized = ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert status_of(post(responder(server.root, "0123456789abcdef01234567"), der)) == unauthorized
    assert status_of(post(responder(server.root, "not-a-project"), der)) == unauthorized
    other = server.create_project()
    assert status_of(post(responder(server.root, other), der)) == unauthorized
    # The very same request at the right project: answered, signed.
    r = post(url, der)
    assert ocsp.load_der_ocsp_response(r.content).certificate_status == ocsp.OCSPCertStatus.GOOD
    # The Atlas API next door still wants credentials.
    r = requests.get(f"{server.root}/api/atlas/v2/groups/{gid}", timeout=30)
    assert r.status_code == 401


def test_rate_limit_per_address_answers_try_later(make_server, tmp_path):
    s = make_server(rate_limit_ocsp_per_minute=2)
    gid = s.create_project()
    leaf, cert = issue(s, gid, tmp_path, "leaf")
    ca = export_ca(s, gid, tmp_path / "ca.pem")
    issuer = x509.load_pem_x509_certificate(ca.read_bytes())
    der = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build().public_bytes(
        serialization.Encoding.DER)
    statuses = []
    for _ in range(3):
        r = requests.post(responder(s.root, gid), data=der,
                          headers={"Content-Type": "application/ocsp-request"}, timeout=30)
        statuses.append(ocsp.load_der_ocsp_response(r.content).response_status)
    assert statuses[:2] == [ocsp.OCSPResponseStatus.SUCCESSFUL] * 2
    assert statuses[2] == ocsp.OCSPResponseStatus.TRY_LATER
    assert int(r.headers["Retry-After"]) >= 1


def ocsp_uri(leaf: pathlib.Path) -> str:
    out = openssl("x509", "-noout", "-ocsp_uri", "-in", str(leaf))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_aia_ocsp_url_only_when_configured(server, make_server, tmp_path):
    # The default profile: Atlas's two extensions, no AIA.
    gid = server.create_project()
    plain, plain_cert = issue(server, gid, tmp_path, "plain")
    assert ocsp_uri(plain) == ""
    assert len(plain_cert.extensions) == 2
    # Configured: the leaf names the responder; the path it names is served.
    s = make_server(ocsp_url="http://ocsp.example.test:8080")
    gid = s.create_project()
    leaf, cert = issue(s, gid, tmp_path, "aia")
    url = ocsp_uri(leaf)
    assert url == f"http://ocsp.example.test:8080/api/dbcerts/v1/ocsp/{gid}"
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    assert not aia.critical and len(cert.extensions) == 3
    ca = export_ca(s, gid, tmp_path / "ca.pem")
    path = urllib.parse.urlsplit(url).path
    code, text = openssl_ocsp(ca, s.root + path, "-cert", str(leaf))
    assert code == 0 and "Response verify OK" in text and f"{leaf}: good" in text, text


@pytest.mark.skipif(BACKEND == "sqlite", reason="multi-node tests run in the PostgreSQL pass of the suite")
def test_revoked_on_one_node_is_revoked_on_the_other_at_once(new_database, nodes, tmp_path):
    a, b = two_nodes(nodes, new_database(), tmp_path)
    sa = a.session()
    gid = create_project(a, sa)
    user = unique_user("mn")
    create_user(a, sa, gid, user)
    r = sa.post(a.url(f"/groups/{gid}/databaseUsers/{user}/certs"), json={"monthsUntilExpiration": 1}, timeout=60)
    assert r.status_code == 201, r.text
    leaf = tmp_path / "leaf.pem"
    pem = split_pem(r.text)
    leaf.write_bytes(pem.cert_pem)
    ca = tmp_path / "ca.pem"
    ca.write_text(subprocess.run([a.args[0], "ca", "export", "--project", gid, *a.store_args],
                                 check=True, capture_output=True, text=True).stdout)
    # Node B answers first (and so has opened the CA), then the revocation lands while A serves.
    code, text = openssl_ocsp(ca, responder(b.root, gid), "-cert", str(leaf))
    assert code == 0 and f"{leaf}: good" in text, text
    revoke_by_api(a.root, sa, gid, pem.cert, "keyCompromise")
    for node in (b, a):
        code, text = openssl_ocsp(ca, responder(node.root, gid), "-cert", str(leaf))
        assert code == 0 and "Response verify OK" in text, text
        assert f"{leaf}: revoked" in text and "Reason: keyCompromise" in text, (node.name, text)


# The multi-node fixtures and helpers of test_many_nodes.py (real nodes on one PostgreSQL).
from test_many_nodes import admin_url, create_project, create_user, new_database, nodes, two_nodes  # noqa: E402,F401
