"""Every issued certificate checked by other X.509 stacks: OpenSSL (CLI), Python's ssl module
(OpenSSL through CPython) in a real mutual-TLS handshake, and pyca/cryptography.

RSA-4096 issuance is slow on small machines, so the `rsa_server` issues exactly one certificate
(module fixture `rsa_bundle`); everything else uses the P-256 `server`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pathlib
import re
import signal
import ssl
import stat
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from _certs_util import (
    IssuedPem,
    assert_validity,
    atlas_date,
    make_server_tls,
    mutual_tls,
    now_utc,
    openssl,
    split_pem,
    unique_user,
)


@dataclasses.dataclass
class Issued:
    """One certificate from POST .../certs, written to disk as returned."""

    gid: str
    user: str
    pem: IssuedPem
    months: int
    before: dt.datetime
    after: dt.datetime
    chain_path: pathlib.Path  # the response body, byte for byte
    cert_path: pathlib.Path  # the CERTIFICATE block only


@dataclasses.dataclass
class Bundle:
    """Two projects of one server: a certificate from A, its CA, and B's CA (and maybe B's cert)."""

    server: object
    a: Issued
    ca_a: pathlib.Path
    ca_b: pathlib.Path
    b: Issued | None
    kind: str


def _issue(server, gid: str, user: str, tmp: pathlib.Path, months: int = 3) -> Issued:
    before = now_utc()
    r = server.call(
        "POST", f"/groups/{gid}/databaseUsers/{user}/certs", json={"monthsUntilExpiration": months}
    )
    after = now_utc()
    assert r.status_code == 201, r.text
    pem = split_pem(r.text)
    chain = tmp / f"{user}-{pem.cert.serial_number}.pem"
    chain.write_bytes(r.content)
    cert = tmp / f"{user}-{pem.cert.serial_number}.crt"
    cert.write_bytes(pem.cert_pem)
    return Issued(gid, user, pem, months, before, after, chain, cert)


def _project_ca(server, gid: str, tmp: pathlib.Path) -> pathlib.Path:
    """The project CA from the extension endpoint; `dbcerts ca export` must print the same PEM."""
    r = server.session.get(f"{server.root}/api/dbcerts/v1/groups/{gid}/ca", timeout=60)
    assert r.status_code == 200, r.text
    assert re.fullmatch(
        r"-----BEGIN CERTIFICATE-----\n(?:[A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n", r.text
    ), r.text
    exported = server.export_ca(gid)
    assert exported == r.text
    path = tmp / f"ca-{gid}.pem"
    path.write_text(r.text)
    return path


@pytest.fixture(scope="module")
def ec_bundle(server, tmp_path_factory) -> Bundle:
    tmp = tmp_path_factory.mktemp("ec-certs")
    gid_a, gid_b = server.create_project(), server.create_project()
    user_a, user_b = unique_user("ecA"), unique_user("ecB")
    server.create_user(gid_a, user_a)
    server.create_user(gid_b, user_b)
    a = _issue(server, gid_a, user_a, tmp)
    b = _issue(server, gid_b, user_b, tmp)
    return Bundle(server, a, _project_ca(server, gid_a, tmp), _project_ca(server, gid_b, tmp), b, "ec")


@pytest.fixture(scope="module")
def rsa_bundle(rsa_server, tmp_path_factory) -> Bundle:
    """The one RSA-4096 certificate of this module (plus a second project's RSA CA)."""
    tmp = tmp_path_factory.mktemp("rsa-certs")
    gid_a, gid_b = rsa_server.create_project(), rsa_server.create_project()
    user = unique_user("rsa")
    rsa_server.create_user(gid_a, user)
    a = _issue(rsa_server, gid_a, user, tmp)
    return Bundle(rsa_server, a, _project_ca(rsa_server, gid_a, tmp), _project_ca(rsa_server, gid_b, tmp), None, "rsa")


@pytest.fixture(params=["ec", "rsa"])
def bundle(request) -> Bundle:
    return request.getfixturevalue(f"{request.param}_bundle")


# ------------------------------------------------------------------ 1. the certificate profile


def _extension_lines(text: str) -> list[str]:
    block = text.split("X509v3 extensions:\n", 1)[1].split("    Signature Algorithm:", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_rsa_certificate_profile_openssl(rsa_bundle):
    a = rsa_bundle.a
    p = openssl("x509", "-noout", "-text", "-in", str(a.chain_path))
    assert p.returncode == 0, p.stderr
    text = p.stdout
    assert "        Version: 3 (0x2)\n" in text
    assert text.count("Signature Algorithm: sha256WithRSAEncryption") == 2, text
    assert "Public Key Algorithm: rsaEncryption" in text
    assert "Public-Key: (4096 bit)" in text
    assert "Exponent: 65537 (0x10001)" in text
    assert f"        Subject: CN = {a.user}\n" in text
    assert f"        Issuer: CN = {a.gid}, OU = Atlas, O = MongoDB Inc\n" in text
    # Exactly these two extensions, both critical; no SAN, Basic Constraints, SKI or AKI.
    assert _extension_lines(text) == [
        "X509v3 Key Usage: critical",
        "Digital Signature",
        "X509v3 Extended Key Usage: critical",
        "TLS Web Client Authentication",
    ], text
    for absent in ("Subject Alternative Name", "Basic Constraints", "Subject Key Identifier", "Authority Key Identifier"):
        assert absent not in text

    m = re.search(r"Serial Number: (\d+) \(0x([0-9a-f]+)\)", text)
    assert m, text
    serial = int(m.group(1))
    assert serial == int(m.group(2), 16) == a.pem.cert.serial_number
    assert 0 < serial < 2**63

    p = openssl("x509", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253", "-in", str(a.chain_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"subject=CN={a.user}", f"issuer=O=MongoDB Inc,OU=Atlas,CN={a.gid}"]

    # Validity: notBefore = creation - 1h, notAfter = creation + 3 calendar months.
    created = assert_validity(a.pem.cert, 3, a.before, a.after)
    p = openssl("x509", "-noout", "-startdate", "-enddate", "-in", str(a.chain_path))
    fmt = "%b %d %H:%M:%S %Y GMT"
    nb_line, na_line = p.stdout.splitlines()
    nb = dt.datetime.strptime(" ".join(nb_line.split("=", 1)[1].split()), fmt).replace(tzinfo=dt.timezone.utc)
    na = dt.datetime.strptime(" ".join(na_line.split("=", 1)[1].split()), fmt).replace(tzinfo=dt.timezone.utc)
    assert nb == created - dt.timedelta(hours=1) == a.pem.cert.not_valid_before_utc
    assert na == a.pem.cert.not_valid_after_utc

    # The private key, as OpenSSL sees it: unencrypted PKCS#8 RSA-4096 matching the certificate.
    p = openssl("pkey", "-in", str(a.chain_path), "-noout", "-text", "-passin", "pass:")
    assert p.returncode == 0, p.stderr
    assert re.search(r"Private-Key: \(4096 bit", p.stdout), p.stdout[:200]
    pub_key = openssl("pkey", "-in", str(a.chain_path), "-pubout").stdout
    pub_cert = openssl("x509", "-in", str(a.chain_path), "-noout", "-pubkey").stdout
    assert pub_key and pub_key == pub_cert


def test_certificate_profile_cryptography(bundle):
    a = bundle.a
    cert = a.pem.cert
    assert cert.version == x509.Version.v3
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, a.user)])
    assert cert.issuer == x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, a.gid),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Atlas"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MongoDB Inc"),
        ]
    )
    assert [(e.oid, e.critical) for e in cert.extensions] == [
        (ExtensionOID.KEY_USAGE, True),
        (ExtensionOID.EXTENDED_KEY_USAGE, True),
    ]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature
    assert not any(
        [ku.content_commitment, ku.key_encipherment, ku.data_encipherment, ku.key_agreement, ku.key_cert_sign, ku.crl_sign]
    )
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert 0 < cert.serial_number < 2**63
    assert_validity(cert, 3, a.before, a.after)
    key = a.pem.key
    if bundle.kind == "rsa":
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size == 4096 and key.public_key().public_numbers().e == 65537
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    # The project CA is the issuer: same name, and it is a CA.
    ca = x509.load_pem_x509_certificate(bundle.ca_a.read_bytes())
    assert ca.subject == cert.issuer
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.not_valid_before_utc <= cert.not_valid_before_utc
    assert ca.not_valid_after_utc >= cert.not_valid_after_utc


# ------------------------------------------------------------------ 2. openssl verify


def test_openssl_verify_against_project_ca(bundle, tmp_path):
    a = bundle.a
    ok = openssl("verify", "-CAfile", str(bundle.ca_a), str(a.cert_path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip() == f"{a.cert_path}: OK"
    # The file as returned (cert + key) verifies too.
    ok = openssl("verify", "-CAfile", str(bundle.ca_a), str(a.chain_path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # It is a client certificate, and only that.
    ok = openssl("verify", "-CAfile", str(bundle.ca_a), "-purpose", "sslclient", str(a.cert_path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = openssl("verify", "-CAfile", str(bundle.ca_a), "-purpose", "sslserver", str(a.cert_path))
    assert bad.returncode != 0
    assert "unsuitable certificate purpose" in bad.stdout + bad.stderr

    # Another project's CA does not vouch for it.
    bad = openssl("verify", "-CAfile", str(bundle.ca_b), str(a.cert_path))
    assert bad.returncode != 0, bad.stdout
    assert "unable to get local issuer certificate" in bad.stdout + bad.stderr
    assert bundle.ca_a.read_text() != bundle.ca_b.read_text()

    if bundle.b is not None:  # positive control for the other project
        ok = openssl("verify", "-CAfile", str(bundle.ca_b), str(bundle.b.cert_path))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        bad = openssl("verify", "-CAfile", str(bundle.ca_a), str(bundle.b.cert_path))
        assert bad.returncode != 0


def test_project_ca_endpoint_requires_digest(ec_bundle):
    s = ec_bundle.server
    r = requests.get(f"{s.root}/api/dbcerts/v1/groups/{ec_bundle.a.gid}/ca", timeout=30)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith('Digest realm="MMS Public API"')
    assert "BEGIN CERTIFICATE" not in r.text


# ------------------------------------------------------------------ 3. Python ssl loads the file


def test_python_ssl_loads_returned_pem(bundle, tmp_path):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(str(bundle.a.chain_path))  # cert + key in one file, as returned
    # Not vacuous: the same loader rejects this certificate paired with somebody else's key.
    foreign = ec.generate_private_key(ec.SECP256R1())
    mismatched = tmp_path / "mismatched.pem"
    mismatched.write_bytes(
        bundle.a.pem.cert_pem
        + foreign.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(ssl.SSLError):
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(str(mismatched))


# ------------------------------------------------------------------ 4. mutual TLS handshake


def _assert_handshake_ok(res, issued: Issued) -> None:
    assert res.server_error is None, repr(res.server_error)
    assert res.client_error is None, repr(res.client_error)
    peer = res.server_peer
    assert peer["subject"] == ((("commonName", issued.user),),)
    assert peer["issuer"] == (
        (("commonName", issued.gid),),
        (("organizationalUnitName", "Atlas"),),
        (("organizationName", "MongoDB Inc"),),
    )
    assert int(peer["serialNumber"], 16) == issued.pem.cert.serial_number
    assert res.client_received == f"hello {issued.user}\n".encode()


def _assert_handshake_refused(res) -> None:
    assert res.server_peer is None
    assert isinstance(res.server_error, ssl.SSLError), repr(res.server_error)
    assert "CERTIFICATE_VERIFY_FAILED" in str(res.server_error) or (
        getattr(res.server_error, "reason", "") == "CERTIFICATE_VERIFY_FAILED"
    ), repr(res.server_error)
    assert res.client_received == b""


def test_mutual_tls_handshake_p256(ec_bundle, tmp_path):
    srv = make_server_tls(tmp_path)
    a, b = ec_bundle.a, ec_bundle.b
    _assert_handshake_ok(mutual_tls(srv, ec_bundle.ca_a, a.chain_path), a)
    _assert_handshake_ok(mutual_tls(srv, ec_bundle.ca_b, b.chain_path), b)  # B is a valid cert...
    _assert_handshake_refused(mutual_tls(srv, ec_bundle.ca_a, b.chain_path))  # ...of another project
    _assert_handshake_refused(mutual_tls(srv, ec_bundle.ca_b, a.chain_path))


def test_mutual_tls_handshake_rsa4096(rsa_bundle, tmp_path):
    srv = make_server_tls(tmp_path)
    a = rsa_bundle.a
    _assert_handshake_ok(mutual_tls(srv, rsa_bundle.ca_a, a.chain_path), a)
    _assert_handshake_refused(mutual_tls(srv, rsa_bundle.ca_b, a.chain_path))


# ------------------------------------------------------------------ 5. private keys are not kept


def _needles(pem: IssuedPem) -> dict[str, bytes]:
    key = pem.key
    found = {
        "PRIVATE KEY base64 body": pem.key_b64.encode(),
        "PKCS#8 DER": pem.key_der,
    }
    for i, line in enumerate(pem.key_b64_lines):
        if len(line) == 64:
            found[f"PEM key line {i}"] = line.encode()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        found["EC private scalar"] = key.private_numbers().private_value.to_bytes(32, "big")
    else:
        nums = key.private_numbers()
        found["RSA d"] = nums.d.to_bytes((nums.d.bit_length() + 7) // 8, "big")
        found["RSA p"] = nums.p.to_bytes((nums.p.bit_length() + 7) // 8, "big")
    return found


def _data_files(data_dir: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("which", ["ec", "rsa"])
def test_private_keys_never_stored_or_logged(request, which, tmp_path):
    bundle: Bundle = request.getfixturevalue(f"{which}_bundle")
    server = bundle.server
    issued = [bundle.a] + ([bundle.b] if bundle.b else [])
    if which == "ec":
        user = unique_user("keyscan")
        server.create_user(bundle.a.gid, user)
        issued += [_issue(server, bundle.a.gid, user, tmp_path, months=m) for m in (1, 24)]
    files = {**_data_files(server.data_dir), **server.database_bytes()}
    names = set(files)
    assert {"server.log", "bootstrap-credentials.json", "master.key"} <= names, names
    db = b"".join(server.database_bytes().values())
    assert db, "no database bytes to scan"
    for it in issued:
        # Control: the scan does see what the server stored about this certificate.
        assert it.user.encode() in db, f"{it.user} not found in the database files: scan is broken"
        for what, needle in _needles(it.pem).items():
            for name, content in files.items():
                assert needle not in content, f"{what} of {it.user}'s certificate found in {name}"

    # Secrets on disk are private to the owner.
    for name in ("bootstrap-credentials.json", "master.key"):
        mode = stat.S_IMODE(os.stat(server.data_dir / name).st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"

    # The log tells where the credentials are, but never the API private key.
    log = files["server.log"]
    assert str(server.data_dir / "bootstrap-credentials.json").encode() in log
    assert server.private_key.encode() not in log
    assert server.private_key.encode() not in db  # the API secret is sealed in the database


# ------------------------------------------------------------------ 6. durability and shutdown


def _listed(server, gid: str, user: str) -> list[dict]:
    r = server.call("GET", f"/groups/{gid}/databaseUsers/{user}/certs")
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_certificates_survive_sigterm_restart(fresh_server, tmp_path):
    s = fresh_server
    gid = s.create_project()
    user = unique_user("dur")
    s.create_user(gid, user)
    issued = []
    for i in range(3):
        if i:
            time.sleep(1.1)  # distinct creation seconds, so "oldest first" is well defined
        issued.append(_issue(s, gid, user, tmp_path))
    ca_before = _project_ca(s, gid, tmp_path).read_text()
    org, pub, priv = s.org_id, s.public_key, s.private_key

    code = s.stop(signal.SIGTERM)
    assert code == 0, s.log_path.read_text()
    s.start()
    assert (s.org_id, s.public_key, s.private_key) == (org, pub, priv)  # credentials kept

    items = _listed(s, gid, user)
    assert [i["_id"] for i in items] == [it.pem.cert.serial_number for it in issued]
    for item, it in zip(items, issued):
        assert item["createdAt"] == atlas_date(it.pem.cert.not_valid_before_utc)
        assert item["notAfter"] == atlas_date(it.pem.cert.not_valid_after_utc)
    assert len({i["createdAt"] for i in items}) == 3

    # The project CA survived too: same PEM, old and new certificates chain to it.
    ca_path = tmp_path / "ca-after.pem"
    ca_path.write_text(s.export_ca(gid))
    assert ca_path.read_text() == ca_before
    new = _issue(s, gid, user, tmp_path)
    for it in issued + [new]:
        p = openssl("verify", "-CAfile", str(ca_path), str(it.cert_path))
        assert p.returncode == 0, p.stdout + p.stderr
    after = _listed(s, gid, user)
    # The new certificate may share its creation second with the third one, so only the
    # set and the createdAt order are pinned down here.
    assert {i["_id"] for i in after} == {it.pem.cert.serial_number for it in issued + [new]}
    assert [i["_id"] for i in after[:2]] == [it.pem.cert.serial_number for it in issued[:2]]
    assert [i["createdAt"] for i in after] == sorted(i["createdAt"] for i in after)


def test_sigint_stops_gracefully(fresh_server, tmp_path):
    s = fresh_server
    gid = s.create_project()
    user = unique_user("int")
    s.create_user(gid, user)
    it = _issue(s, gid, user, tmp_path)
    code = s.stop(signal.SIGINT)
    assert code == 0, s.log_path.read_text()
    s.start()
    assert [i["_id"] for i in _listed(s, gid, user)] == [it.pem.cert.serial_number]


# ------------------------------------------------------------------ 7. monthsUntilExpiration


@pytest.mark.dates
@pytest.mark.parametrize("months", [1, 24, None])
def test_months_until_expiration(server, ec_bundle, months, tmp_path):
    gid = ec_bundle.a.gid
    user = unique_user(f"m{months}")
    server.create_user(gid, user)
    body = {} if months is None else {"monthsUntilExpiration": months}
    before = now_utc()
    r = server.call("POST", f"/groups/{gid}/databaseUsers/{user}/certs", json=body)
    after = now_utc()
    assert r.status_code == 201, r.text
    cert = split_pem(r.text).cert
    expected_months = 3 if months is None else months
    created = assert_validity(cert, expected_months, before, after)
    [item] = _listed(server, gid, user)
    assert item["createdAt"] == atlas_date(created - dt.timedelta(hours=1))
    assert item["notAfter"] == atlas_date(cert.not_valid_after_utc)
