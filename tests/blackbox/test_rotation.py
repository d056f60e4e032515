"""Project CA rotation with overlap (issue 17, section 4), on the real binary.

- Before rotation, after it, and after the old generation is retired, a leaf of each generation
  is checked against the trust bundle that `dbcerts ca export` and `GET .../ca` return, with
  `openssl verify -CAfile` and with a real TLS handshake (a Python `ssl` server requiring a client
  certificate, the bundle as its CA file, as `mongod` uses `net.tls.CAFile`): old and new leaves
  pass exactly while their generation is in the bundle.
- The OCSP responder answers `good`, with a signature `openssl ocsp` verifies, for the leaves of
  both generations.
- Rotation and retirement are Project Owner operations, audited and counted in metrics; the
  active generation cannot be retired; retiring twice keeps the first time.
- `dbcerts ca rotate` / `ca retire` work on the store while a server runs, and the server issues
  from the new generation at once (it checks the active generation on every issuance).
- Two nodes on one PostgreSQL rotating at the same moment: every rotation either makes its own
  generation or is told 409 `CA_ROTATION_CONFLICT`; the generations stay 1..n with one active,
  and both nodes issue from the newest at once.
- Under libfaketime: a project CA made nine years and nine months ago cannot cover a 24-month
  certificate; the request gets a certificate of a new generation (never a 500), while a
  one-month certificate still comes from the old one.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import subprocess
import threading

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier
from requests.auth import HTTPDigestAuth

from _certs_util import make_server_tls, mutual_tls, openssl, split_pem, unique_user
from conftest import BACKEND, dbcerts_bin, remember_private_key, remember_secret

GENERATION_QUALIFIER = ObjectIdentifier("2.5.4.44")
LIBFAKETIME = pathlib.Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def ext(server, method: str, path: str, **kw):
    return server.session.request(method, f"{server.root}/api/dbcerts/v1{path}", timeout=60, **kw)


def issue(server, gid: str, user: str, tmp: pathlib.Path, months: int = 3) -> pathlib.Path:
    pem = server.create_cert(gid, user, months)
    path = tmp / f"{user}-{months}-{len(list(tmp.iterdir()))}.pem"
    path.write_text(pem)
    return path


def generation_of(leaf: pathlib.Path) -> int:
    cert = split_pem(leaf.read_text()).cert
    marks = cert.issuer.get_attributes_for_oid(GENERATION_QUALIFIER)
    return int(marks[0].value) if marks else 1


def bundle(server, gid: str, tmp: pathlib.Path) -> pathlib.Path:
    """The bundle from the CLI and from the endpoint, which must agree."""
    exported = server.export_ca(gid)
    served = ext(server, "GET", f"/groups/{gid}/ca")
    assert served.status_code == 200, served.text
    assert served.text == exported
    path = tmp / f"bundle-{len(list(tmp.iterdir()))}.pem"
    path.write_text(exported)
    return path


def in_bundle(path: pathlib.Path) -> list[int]:
    certs = x509.load_pem_x509_certificates(path.read_bytes())
    out = []
    for c in certs:
        marks = c.subject.get_attributes_for_oid(GENERATION_QUALIFIER)
        out.append(int(marks[0].value) if marks else 1)
    return out


def accepted(srv_tls, bundle_path: pathlib.Path, leaf: pathlib.Path) -> bool:
    """openssl verify and a TLS handshake, which must agree."""
    v = openssl("verify", "-CAfile", str(bundle_path), str(leaf))
    hs = mutual_tls(srv_tls, bundle_path, leaf)
    tls_ok = hs.server_error is None and hs.server_peer is not None
    assert (v.returncode == 0) == tls_ok, (v.stdout, v.stderr, hs.server_error)
    if v.returncode != 0:
        assert "unable to get local issuer certificate" in v.stdout + v.stderr, v.stdout + v.stderr
    return tls_ok


def openssl_ocsp(issuer: pathlib.Path, trusted: pathlib.Path, url: str, leaf: pathlib.Path) -> tuple[int, str]:
    out = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(issuer), "-CAfile", str(trusted), "-url", url, "-timeout", "30",
         "-cert", str(leaf)],
        capture_output=True, text=True, timeout=60,
    )
    return out.returncode, out.stdout + out.stderr


def audit(server, gid: str) -> list[dict]:
    p = subprocess.run(
        [dbcerts_bin(), "audit", "list", "--project", gid, "--json", *server.store_args],
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def metric(server, name: str, **labels) -> float | None:
    text = server.session.get(server.metrics_url, timeout=60).text
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_old_and_new_leaves_pass_exactly_while_their_generation_is_in_the_bundle(make_server, tmp_path):
    server = make_server()
    srv_tls = make_server_tls(tmp_path)
    gid = server.create_project()
    user = unique_user()
    server.create_user(gid, user)

    # Before rotation: one CA, Atlas's name, exactly what the endpoint always returned.
    old = issue(server, gid, user, tmp_path)
    assert generation_of(old) == 1
    b = bundle(server, gid, tmp_path)
    assert in_bundle(b) == [1]
    assert accepted(srv_tls, b, old)

    # Rotation: generation 2 is active for new leaves; the bundle holds both.
    r = ext(server, "POST", f"/groups/{gid}/ca:rotate")
    assert r.status_code == 201, r.text
    g2 = r.json()
    assert g2["generation"] == 2 and g2["active"] is True and "retiredAt" not in g2
    new = issue(server, gid, user, tmp_path)
    assert generation_of(new) == 2
    b = bundle(server, gid, tmp_path)
    assert in_bundle(b) == [1, 2]
    assert accepted(srv_tls, b, old)
    assert accepted(srv_tls, b, new)
    listed = ext(server, "GET", f"/groups/{gid}/cas").json()
    assert [(g["generation"], g["active"], g["inBundle"]) for g in listed["results"]] == [
        (1, False, True), (2, True, True)]
    # The OCSP responder answers for the leaves of each generation, signed by that generation.
    for g, leaf in zip(listed["results"], (old, new)):
        issuer = tmp_path / f"generation-{g['generation']}.pem"
        issuer.write_text(g["certificate"])
        code, text = openssl_ocsp(issuer, b, f"{server.root}/api/dbcerts/v1/ocsp/{gid}", leaf)
        assert code == 0 and "Response verify OK" in text and f"{leaf}: good" in text, text

    # The active generation cannot be retired; an unknown one is 404.
    r = ext(server, "POST", f"/groups/{gid}/ca:retire", json={"generation": 2})
    assert r.status_code == 409 and r.json()["errorCode"] == "CA_GENERATION_ACTIVE", r.text
    r = ext(server, "POST", f"/groups/{gid}/ca:retire", json={"generation": 7})
    assert r.status_code == 404 and r.json()["errorCode"] == "CA_GENERATION_NOT_FOUND", r.text
    r = ext(server, "POST", f"/groups/{gid}/ca:retire", json={"generation": "1"})
    assert r.status_code == 400, r.text

    # Retirement: generation 1 leaves the bundle, and its leaves are refused; twice is once.
    r = ext(server, "POST", f"/groups/{gid}/ca:retire", json={"generation": 1})
    assert r.status_code == 200, r.text
    retired = r.json()
    assert retired["generation"] == 1 and retired["inBundle"] is False and "retiredAt" in retired
    again = ext(server, "POST", f"/groups/{gid}/ca:retire", json={"generation": 1})
    assert again.status_code == 200 and again.json()["retiredAt"] == retired["retiredAt"], again.text
    b = bundle(server, gid, tmp_path)
    assert in_bundle(b) == [2]
    assert not accepted(srv_tls, b, old)
    assert accepted(srv_tls, b, new)

    # Audited once each (the repeated retirement changed nothing), and counted.
    actions = [e["action"] for e in audit(server, gid)]
    assert actions.count("ca.rotated") == 1 and actions.count("ca.retired") == 1, actions
    assert metric(server, "dbcerts_ca_rotations_total", group_id=gid, reason="manual") == 1
    assert metric(server, "dbcerts_ca_retirements_total", group_id=gid) == 1
    left = metric(server, "dbcerts_ca_expiry_seconds", group_id=gid, generation="2")
    assert left is not None and 9 * 365 * 86400 < left <= 10 * 366 * 86400, left


def test_cli_rotation_and_retirement_are_seen_by_a_running_server_at_once(make_server, tmp_path):
    server = make_server()
    gid = server.create_project()
    user = unique_user()
    server.create_user(gid, user)
    assert generation_of(issue(server, gid, user, tmp_path)) == 1

    def cli(*args):
        return subprocess.run([dbcerts_bin(), "ca", *args, "--project", gid, *server.store_args],
                              capture_output=True, text=True, timeout=60)

    p = cli("rotate")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["generation"] == 2
    # The server's next certificate comes from generation 2: no restart, no waiting.
    assert generation_of(issue(server, gid, user, tmp_path)) == 2
    p = cli("retire", "--generation", "2")
    assert p.returncode != 0 and "active" in p.stderr, (p.stdout, p.stderr)
    p = cli("retire", "--generation", "1")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["retiredAt"]
    assert in_bundle(bundle(server, gid, tmp_path)) == [2]
    entries = [e for e in audit(server, gid) if e["action"] in ("ca.rotated", "ca.retired")]
    assert [(e["action"], e["actor"]) for e in entries] == [("ca.rotated", "operator"), ("ca.retired", "operator")]


def test_only_a_project_owner_rotates_or_retires(make_server):
    server = make_server()
    gid = server.create_project()
    out = subprocess.run(
        [dbcerts_bin(), "apikey", "create", "--role", "ORG_MEMBER", "--project-role", f"{gid}:GROUP_READ_ONLY",
         *server.store_args], capture_output=True, text=True, timeout=60, check=True)
    creds = json.loads(out.stdout)
    remember_secret(creds["privateKey"])
    s = requests.Session()
    s.auth = HTTPDigestAuth(creds["publicKey"], creds["privateKey"])
    base = f"{server.root}/api/dbcerts/v1/groups/{gid}"
    assert ext(server, "GET", f"/groups/{gid}/ca").status_code == 200  # the owner creates it
    r = s.post(f"{base}/ca:rotate", timeout=60)
    assert r.status_code == 401 and r.json()["errorCode"] == "USER_UNAUTHORIZED", r.text
    r = s.post(f"{base}/ca:retire", json={"generation": 1}, timeout=60)
    assert r.status_code == 401 and r.json()["errorCode"] == "USER_UNAUTHORIZED", r.text
    assert s.get(f"{base}/cas", timeout=60).status_code == 200
    assert s.get(f"{base}/ca", timeout=60).status_code == 200


@pytest.mark.dates
def test_a_certificate_that_would_outlive_the_ca_comes_from_a_new_generation(make_server, monkeypatch, tmp_path):
    if not LIBFAKETIME.exists():
        pytest.fail(f"{LIBFAKETIME} is missing: scripts/test installs Debian's faketime package")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    # Nine years and nine months ago, clamped to a day every month has.
    then = now.replace(day=min(now.day, 28))
    months = then.year * 12 + then.month - 1 - (9 * 12 + 9)
    then = then.replace(year=months // 12, month=months % 12 + 1)
    with monkeypatch.context() as env:
        env.setenv("LD_PRELOAD", str(LIBFAKETIME))
        env.setenv("FAKETIME", f"@{then:%Y-%m-%d %H:%M:%S}")
        env.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        env.setenv("TZ", "UTC")
        env.delenv("FAKETIME_SHARED", raising=False)
        server = make_server()
        gid = server.create_project()
        user = unique_user()
        server.create_user(gid, user)
        first = issue(server, gid, user, tmp_path, months=1)
    assert generation_of(first) == 1
    ca_end = x509.load_pem_x509_certificate(server.export_ca(gid).encode()).not_valid_after_utc
    assert now + dt.timedelta(days=80) < ca_end < now + dt.timedelta(days=100), ca_end

    # The same store today, the real clock: the CA has about three months left.
    server.stop()
    server.start()
    short = issue(server, gid, user, tmp_path, months=1)
    assert generation_of(short) == 1, "a one-month certificate still fits the old CA"
    r = server.call("POST", f"/groups/{gid}/databaseUsers/{user}/certs", json={"monthsUntilExpiration": 24})
    assert r.status_code == 201, r.text
    remember_private_key(r.text)
    long = tmp_path / "long.pem"
    long.write_text(r.text)
    assert generation_of(long) == 2
    b = bundle(server, gid, tmp_path)
    assert in_bundle(b) == [1, 2]
    for leaf in (short, long):
        v = openssl("verify", "-CAfile", str(b), str(leaf))
        assert v.returncode == 0, v.stdout + v.stderr
    rotations = [e for e in audit(server, gid) if e["action"] == "ca.rotated"]
    assert len(rotations) == 1 and rotations[0]["details"]["reason"] == "automatic", rotations
    assert metric(server, "dbcerts_ca_rotations_total", group_id=gid, reason="automatic") == 1


@pytest.mark.skipif(BACKEND == "sqlite", reason="multi-node tests run in the PostgreSQL pass of the suite")
def test_two_nodes_rotating_at_once_make_one_generation_each_or_are_told(new_database, nodes, tmp_path):
    a, b = two_nodes(nodes, new_database(), tmp_path)
    sa = a.session()
    gid = create_project(a, sa)
    user = unique_user("rn")
    create_user(a, sa, gid, user)

    def certificate(node) -> pathlib.Path:
        r = node.session().post(node.url(f"/groups/{gid}/databaseUsers/{user}/certs"),
                                json={"monthsUntilExpiration": 1}, timeout=60)
        assert r.status_code == 201, r.text
        remember_private_key(r.text)
        path = tmp_path / f"{node.name}-{len(list(tmp_path.iterdir()))}.pem"
        path.write_text(r.text)
        return path

    # Both nodes have generation 1 open.
    assert generation_of(certificate(a)) == 1 and generation_of(certificate(b)) == 1
    rounds, answers, lock = 3, [], threading.Lock()
    go = threading.Barrier(2 * rounds)

    def rotate(node) -> None:
        s = node.session()
        go.wait()
        r = s.post(f"{node.root}/api/dbcerts/v1/groups/{gid}/ca:rotate", timeout=60)
        with lock:
            answers.append((r.status_code, r.json()))

    threads = [threading.Thread(target=rotate, args=(n,)) for n in (a, b) for _ in range(rounds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    made = sorted(body["generation"] for status, body in answers if status == 201)
    told = [body for status, body in answers if status != 201]
    assert all(body["errorCode"] == "CA_ROTATION_CONFLICT" and body["error"] == 409 for body in told), told
    assert made and made == list(range(2, 2 + len(made))), answers
    listed = a.session().get(f"{a.root}/api/dbcerts/v1/groups/{gid}/cas", timeout=60).json()["results"]
    assert [g["generation"] for g in listed] == list(range(1, 2 + len(made))), listed
    assert [g["generation"] for g in listed if g["active"]] == [made[-1]], listed
    # No node keeps signing with a generation it had cached.
    assert generation_of(certificate(a)) == made[-1]
    assert generation_of(certificate(b)) == made[-1]


# The multi-node fixtures and helpers of test_many_nodes.py (real nodes on one PostgreSQL).
from test_many_nodes import admin_url, create_project, create_user, new_database, nodes, two_nodes  # noqa: E402,F401
