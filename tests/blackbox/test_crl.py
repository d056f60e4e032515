"""CRLs that mongod can load (issue 17, section 2), against the real binary, real openssl and a
real TLS server configured the way mongod checks client certificates.

- `dbcerts ca crl --out FILE` writes the project's CRLs; `openssl verify -crl_check -CAfile CA
  -CRLfile FILE` says `certificate revoked` for revoked leaves and OK for the others;
  `openssl crl -text` shows the CRL number, each entry's reason and the dates, and the
  signature verifies against the project CA. The number grows with every change.
- `Accept: application/pkix-crl` gives the same CRL in DER.
- One PEM file holding the CRLs of several issuers loads in OpenSSL: two projects' CAs, and one
  project's two CA generations after `ca:rotate` (the endpoint answers both CRLs; DER is 406
  `CRL_SEVERAL_ISSUERS`); every leaf is checked against its own issuer's CRL.
- `dbcerts mongod-config` names `net.tls.CRLFile`, the sidecar and `rotateCertificates`.
- The distribution URL: off by default (404 for all, no `Link`); on, the `Link` of the
  authenticated answer names a URL that serves the same CRLs without credentials.
- `--out` replaces the file by rename: a reader holding the old file keeps the old bytes, and
  no temporary file is left behind.
- A Python `ssl` server with `VERIFY_CRL_CHECK_LEAF`, the project CA and the CRL file that
  `dbcerts ca crl sync --every 1s --exec 'kill -HUP …'` maintains (SIGHUP makes it read the
  files again, as `rotateCertificates` makes mongod): a revoked client is refused, a valid one
  passes and keeps passing across a refresh, a revocation reaches the server through the
  sidecar. Under libfaketime past the file's nextUpdate every client is refused ("CRL has
  expired"), until the sidecar fetches the CRL the server rebuilt by then.
- Durability: kill -9 during a burst of API revocations; after the restart every revocation
  that got a 2xx is in the CRL.
- Many nodes (PostgreSQL pass only): a certificate revoked while node A serves is in the CRL
  node B serves at once, and node B's OCSP answer says revoked.

Revocations go through the revocation endpoint (`POST .../certs/{serial}:revoke`), whose 2xx
means committed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import json
import os
import pathlib
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from _certs_util import make_server_tls, openssl, split_pem, unique_user
from conftest import BACKEND, dbcerts_bin
from test_cli import cli_env

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TLS_SERVER = HERE / "_crl_tls_server.py"
KEY_COMPROMISE = "keyCompromise"
SUPERSEDED = "superseded"
CESSATION = "cessationOfOperation"
DER_TYPE = "application/pkix-crl"
PEM_CRL = re.compile(r"-----BEGIN X509 CRL-----\n[A-Za-z0-9+/=\n]+-----END X509 CRL-----\n")


# ---------------------------------------------------------------- helpers


def crl_url(server, gid: str) -> str:
    return f"{server.root}/api/dbcerts/v1/groups/{gid}/crl"


def get_crl(server, gid: str, accept: str | None = None) -> requests.Response:
    headers = {"Accept": accept} if accept else {}
    r = server.session.get(crl_url(server, gid), headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    return r


def crls_in(pem: str) -> list[x509.CertificateRevocationList]:
    blocks = PEM_CRL.findall(pem)
    assert "".join(blocks) == pem, f"not only X509 CRL blocks:\n{pem}"
    return [x509.load_pem_x509_crl(b.encode()) for b in blocks]


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


@dataclasses.dataclass
class Leaf:
    path: pathlib.Path  # the certificate and its key, as a client holds them
    cert: x509.Certificate
    gid: str
    user: str


def issue(server, gid: str, tmp: pathlib.Path, name: str) -> Leaf:
    """A new user's certificate."""
    user = unique_user("crl")
    server.create_user(gid, user)
    text = server.create_cert(gid, user, months=1)
    path = tmp / f"{name}.pem"
    path.write_text(text)
    return Leaf(path, split_pem(text).cert, gid, user)


def export_ca(server, gid: str, path: pathlib.Path) -> pathlib.Path:
    path.write_text(server.export_ca(gid))
    return path


def revoke_url(root: str, leaf: Leaf) -> str:
    return f"{root}/api/dbcerts/v1/groups/{leaf.gid}/databaseUsers/{leaf.user}/certs/{leaf.cert.serial_number}:revoke"


def revoke(server, leaf: Leaf, reason: str) -> None:
    """Revokes through the API (committed when it answers 200)."""
    r = server.session.post(revoke_url(server.root, leaf), json={"reason": reason}, timeout=60)
    assert r.status_code == 200, r.text


def client_env(server, home: pathlib.Path) -> dict[str, str]:
    return cli_env(home, {
        "DBCERTS_BASE_URL": server.root,
        "DBCERTS_PUBLIC_API_KEY": server.public_key,
        "DBCERTS_PRIVATE_API_KEY": server.private_key,
    })  # fmt: skip


def ca_crl(server, gid: str, out: pathlib.Path, home: pathlib.Path) -> None:
    p = subprocess.run(
        [dbcerts_bin(), "ca", "crl", "--projectId", gid, "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=client_env(server, home), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert p.stdout == "", p.stdout


def verify(ca: pathlib.Path, crl: pathlib.Path, leaf: pathlib.Path) -> tuple[int, str]:
    p = openssl("verify", "-crl_check", "-CAfile", str(ca), "-CRLfile", str(crl), str(leaf))
    return p.returncode, p.stdout + p.stderr


def openssl_time(d: dt.datetime) -> str:
    """`Mar  4 05:06:07 2026 GMT`, as openssl prints an ASN.1 time."""
    return f"{d:%b} {d.day:2d} {d:%H:%M:%S} {d.year} GMT"


def faked_env(when: int) -> dict[str, str]:
    """The environment scripts/at-date gives a process: the wall clock at Unix time `when`,
    running on at real speed. Also right when this test itself runs under libfaketime (the
    calendar runs): libfaketime's offset is from the real clock, the clock seen here is not."""
    lib = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    assert lib, "libfaketime is not installed (scripts/test installs the faketime package)"
    outer = os.environ.get("FAKETIME", "")
    outer_offset = int(outer) if re.fullmatch(r"[+-]\d+", outer) else 0
    offset = when - int(time.time()) + outer_offset
    site = str(ROOT / "scripts" / "at-date-python")
    pythonpath = os.environ.get("PYTHONPATH")
    return dict(
        os.environ,
        LD_PRELOAD=lib[0],
        FAKETIME=f"{offset:+d}",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
        PYTHONPATH=site + (f":{pythonpath}" if pythonpath else ""),
        TZ="UTC",
    )


class TlsServer:
    """_crl_tls_server.py in a process of its own; its output lines arrive on a queue."""

    def __init__(self, srv, ca: pathlib.Path, crl: pathlib.Path, env: dict[str, str] | None = None) -> None:
        self.srv = srv
        self.proc = subprocess.Popen(
            [sys.executable, str(TLS_SERVER), str(srv.cert_path), str(srv.key_path), str(ca), str(crl)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.next_line()
        assert first.startswith("listening "), first
        self.port = int(first.split()[1])

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = 30) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("the TLS server said nothing")

    def wait_for(self, prefix: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"the TLS server never said {prefix!r}"
            line = self.next_line(left)
            if line.startswith(prefix):
                return line

    def handshake(self, leaf: Leaf) -> str:
        """Connects with the client certificate; returns the server's verdict line."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(self.srv.ca_path))
        ctx.load_cert_chain(str(leaf.path))
        received = b""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=20) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    while chunk := tls.recv(4096):
                        received += chunk
        except (ssl.SSLError, OSError):
            pass
        verdict = self.wait_for(("accepted", "refused"))
        assert verdict.startswith("accepted") == received.startswith(b"hello"), (verdict, received)
        return verdict

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class Sidecar:
    """`dbcerts ca crl sync` in a process of its own."""

    def __init__(self, server, gid: str, out: pathlib.Path, home: pathlib.Path, exec_cmd: str) -> None:
        self.proc = subprocess.Popen(
            [dbcerts_bin(), "ca", "crl", "sync", "--projectId", gid, "--out", str(out),
             "--every", "1s", "--exec", exec_cmd],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=client_env(server, home),
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, f"sync exited {self.proc.returncode}\n{out}\n{err}"


@pytest.fixture()
def cleanup():
    stops: list = []
    yield stops.append
    for stop in reversed(stops):
        stop()


# ---------------------------------------------------------------- openssl against the files


def test_openssl_verify_refuses_exactly_the_revoked_and_crl_text_shows_number_reasons_dates(server, tmp_path):
    gid = server.create_project()
    good = issue(server, gid, tmp_path, "good")
    bad = issue(server, gid, tmp_path, "bad")
    gone = issue(server, gid, tmp_path, "gone")
    ca = export_ca(server, gid, tmp_path / "ca.pem")
    crl = tmp_path / "crl.pem"
    home = tmp_path / "home"

    # Before any revocation: an empty CRL, and every leaf verifies with CRL checking on.
    ca_crl(server, gid, crl, home)
    [empty] = crls_in(crl.read_text())
    assert len(empty) == 0
    for leaf in (good, bad, gone):
        code, text = verify(ca, crl, leaf.path)
        assert code == 0 and f"{leaf.path}: OK" in text, text

    before = int(time.time())
    revoke(server, bad, KEY_COMPROMISE)
    revoke(server, gone, CESSATION)
    ca_crl(server, gid, crl, home)
    after = int(time.time())
    code, text = verify(ca, crl, good.path)
    assert code == 0 and f"{good.path}: OK" in text, text
    for leaf in (bad, gone):
        code, text = verify(ca, crl, leaf.path)
        assert code != 0 and "certificate revoked" in text, text

    [c] = crls_in(crl.read_text())
    assert crl_number(c) > crl_number(empty)
    # Default dates: thisUpdate 5 minutes back, nextUpdate 7 days after the build.
    this = int(c.last_update_utc.timestamp())
    nxt = int(c.next_update_utc.timestamp())
    assert before - 300 <= this <= after - 300
    assert nxt - this == 7 * 86_400 + 300
    p = openssl("crl", "-in", str(crl), "-noout", "-text")
    assert p.returncode == 0, p.stderr
    text = p.stdout
    assert re.search(rf"X509v3 CRL Number:\s*\n\s*{crl_number(c)}\n", text), text
    assert "X509v3 Authority Key Identifier" in text, text
    assert f"Last Update: {openssl_time(c.last_update_utc)}" in text, text
    assert f"Next Update: {openssl_time(c.next_update_utc)}" in text, text
    entries = {
        int(m.group(1), 16): m.group(2)
        for m in re.finditer(r"Serial Number: ([0-9A-F]+)\n(.*?)(?=\n    Serial Number:|\n    Signature Algorithm|\Z)",
                             text, re.S)
    }  # fmt: skip
    assert set(entries) == {bad.cert.serial_number, gone.cert.serial_number}, text
    for leaf, reason in ((bad, "Key Compromise"), (gone, "Cessation Of Operation")):
        entry = entries[leaf.cert.serial_number]
        assert reason in entry, entry
        revoked = c.get_revoked_certificate_by_serial_number(leaf.cert.serial_number)
        assert before <= revoked.revocation_date_utc.timestamp() <= after
        assert f"Revocation Date: {openssl_time(revoked.revocation_date_utc)}" in entry, entry
    # Signed by the project CA.
    p = openssl("crl", "-in", str(crl), "-noout", "-CAfile", str(ca))
    assert p.returncode == 0 and "verify OK" in p.stdout + p.stderr, p.stdout + p.stderr

    # Unchanged store: the same CRL again, byte for byte; revoking again changes nothing.
    revoke(server, bad, SUPERSEDED)
    again = tmp_path / "again.pem"
    ca_crl(server, gid, again, home)
    assert again.read_bytes() == crl.read_bytes()


def test_der_on_request_is_the_same_crl(server, tmp_path):
    gid = server.create_project()
    leaf = issue(server, gid, tmp_path, "leaf")
    revoke(server, leaf, SUPERSEDED)
    pem = get_crl(server, gid)
    assert pem.headers["Content-Type"] == "application/x-pem-file"
    der = get_crl(server, gid, DER_TYPE)
    assert der.headers["Content-Type"] == DER_TYPE
    [c] = crls_in(pem.text)
    assert der.content == c.public_bytes(serialization.Encoding.DER)
    (tmp_path / "crl.der").write_bytes(der.content)
    p = openssl("crl", "-inform", "DER", "-in", str(tmp_path / "crl.der"), "-noout", "-text")
    assert p.returncode == 0 and "Superseded" in p.stdout, p.stdout + p.stderr
    # Nobody without credentials gets it.
    assert requests.get(crl_url(server, gid), timeout=60).status_code == 401


def test_one_pem_file_with_several_issuers_loads_in_openssl(server, tmp_path):
    """Two issuers (two projects' CAs) in one CAfile and their CRLs in one CRL file: each leaf is
    checked against its own issuer's CRL (a leaf whose issuer had no CRL in the file would fail
    with "unable to get certificate CRL")."""
    leaves = {}
    cas, crls = [], []
    for p in ("p", "q"):
        gid = server.create_project()
        leaves[p, "good"] = issue(server, gid, tmp_path, f"{p}-good")
        leaves[p, "bad"] = issue(server, gid, tmp_path, f"{p}-bad")
        revoke(server, leaves[p, "bad"], KEY_COMPROMISE)
        cas.append(server.export_ca(gid))
        pem = get_crl(server, gid).text
        assert len(crls_in(pem)) == 1  # one CA per project until a rotation (test below)
        crls.append(pem)
    ca = tmp_path / "bundle.pem"
    ca.write_text("".join(cas))
    crl = tmp_path / "crls.pem"
    crl.write_text("".join(crls))
    assert len(crls_in(crl.read_text())) == 2
    for (p, kind), leaf in leaves.items():
        code, text = verify(ca, crl, leaf.path)
        if kind == "good":
            assert code == 0 and f"{leaf.path}: OK" in text, (p, text)
        else:
            assert code != 0 and "certificate revoked" in text, (p, text)


def test_after_a_rotation_the_crl_file_holds_both_generations_and_openssl_checks_each(server, tmp_path):
    """One project, two CA generations: the endpoint answers both CRLs in one PEM file, the
    trust bundle and that file verify old and new leaves against their own issuer's CRL, and DER
    (one CRL) is refused with 406."""
    gid = server.create_project()
    old_good = issue(server, gid, tmp_path, "old-good")
    old_bad = issue(server, gid, tmp_path, "old-bad")
    r = server.session.post(f"{server.root}/api/dbcerts/v1/groups/{gid}/ca:rotate", timeout=60)
    assert r.status_code == 201, r.text
    new_good = issue(server, gid, tmp_path, "new-good")
    new_bad = issue(server, gid, tmp_path, "new-bad")
    assert new_good.cert.issuer != old_good.cert.issuer
    revoke(server, old_bad, KEY_COMPROMISE)
    revoke(server, new_bad, SUPERSEDED)
    bundle = export_ca(server, gid, tmp_path / "bundle.pem")
    crl = tmp_path / "crl.pem"
    ca_crl(server, gid, crl, tmp_path / "home")
    crls = crls_in(crl.read_text())
    assert sorted(c.issuer.rfc4514_string() for c in crls) == sorted(
        leaf.cert.issuer.rfc4514_string() for leaf in (old_good, new_good)
    )
    by_issuer = {c.issuer: [e.serial_number for e in c] for c in crls}
    assert by_issuer[old_bad.cert.issuer] == [old_bad.cert.serial_number]
    assert by_issuer[new_bad.cert.issuer] == [new_bad.cert.serial_number]
    for leaf in (old_good, new_good):
        code, text = verify(bundle, crl, leaf.path)
        assert code == 0 and f"{leaf.path}: OK" in text, text
    for leaf in (old_bad, new_bad):
        code, text = verify(bundle, crl, leaf.path)
        assert code != 0 and "certificate revoked" in text, text
    r = server.session.get(crl_url(server, gid), headers={"Accept": DER_TYPE}, timeout=60)
    assert r.status_code == 406 and r.json()["errorCode"] == "CRL_SEVERAL_ISSUERS", r.text


def test_out_replaces_the_file_by_rename(server, tmp_path):
    gid = server.create_project()
    issue(server, gid, tmp_path, "leaf")
    d = tmp_path / "mongod"
    d.mkdir()
    out = d / "crl.pem"
    out.write_text("the old file\n")
    old_inode = out.stat().st_ino
    with open(out) as reader:
        ca_crl(server, gid, out, tmp_path / "home")
        # A reader of the old file (mongod mid-read) still has all of the old bytes.
        assert reader.read() == "the old file\n"
    assert out.stat().st_ino != old_inode
    assert out.read_text() == get_crl(server, gid).text
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in d.iterdir()) == ["crl.pem"]


def test_mongod_config_names_the_crl_file_and_how_to_keep_and_reload_it(server, tmp_path):
    gid = server.create_project()
    issue(server, gid, tmp_path, "leaf")
    p = subprocess.run(
        [dbcerts_bin(), "mongod-config", "--projectId", gid, "-o", "json"],
        capture_output=True, text=True, timeout=120, env=client_env(server, tmp_path / "home"),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    conf_text = json.loads(p.stdout)["mongodConf"]
    crl_file = f"/etc/mongodb/dbcerts-{gid}-crl.pem"
    tls = yaml.safe_load(conf_text)["net"]["tls"]
    assert tls["CRLFile"] == crl_file and tls["CAFile"], conf_text
    # The sidecar that keeps it, and the reload mongod needs after each change.
    assert f"dbcerts ca crl sync --projectId {gid} --out {crl_file}" in conf_text, conf_text
    assert "rotateCertificates" in conf_text, conf_text


def test_the_distribution_url_serves_without_credentials_only_when_switched_on(server, make_server, tmp_path):
    # Off (the shared server): no Link, and the path answers 404 to everyone, never 401.
    gid = server.create_project()
    issue(server, gid, tmp_path, "off")
    assert "Link" not in get_crl(server, gid).headers
    r = requests.get(f"{server.root}/api/dbcerts/v1/crl/{'A' * 43}", timeout=60)
    assert r.status_code == 404 and r.json()["errorCode"] == "RESOURCE_NOT_FOUND", r.text

    on = make_server(crl_distribution=True)
    gid = on.create_project()
    leaf = issue(on, gid, tmp_path, "on")
    revoke(on, leaf, KEY_COMPROMISE)
    authed = get_crl(on, gid)
    m = re.fullmatch(r"<(/api/dbcerts/v1/crl/([A-Za-z0-9_-]+))>; rel=\"alternate\"", authed.headers["Link"])
    assert m, authed.headers["Link"]
    path, token = m.groups()
    assert len(token) >= 43  # 256 random bits
    assert get_crl(on, gid).headers["Link"] == authed.headers["Link"], "one token per project"
    anonymous = requests.get(on.root + path, timeout=60)
    assert anonymous.status_code == 200 and anonymous.text == authed.text
    der = requests.get(on.root + path, headers={"Accept": DER_TYPE}, timeout=60)
    assert der.status_code == 200 and der.headers["Content-Type"] == DER_TYPE
    assert [e.serial_number for e in x509.load_der_x509_crl(der.content)] == [leaf.cert.serial_number]
    # Another token, or none: the same 404.
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), ""):
        r = requests.get(f"{on.root}/api/dbcerts/v1/crl/{bad}", timeout=60)
        assert r.status_code == 404, (bad, r.text)


# ---------------------------------------------------------------- a TLS server configured like mongod


def test_a_mongod_like_tls_server_enforces_the_crl_the_sidecar_keeps(make_server, tmp_path, cleanup, monkeypatch):
    # A CRL valid one hour, rebuilt every ten minutes.
    server = make_server(crl_validity_secs=3600, crl_refresh_secs=600)
    gid = server.create_project()
    good = issue(server, gid, tmp_path, "good")
    bad = issue(server, gid, tmp_path, "bad")
    later = issue(server, gid, tmp_path, "later")
    ca = export_ca(server, gid, tmp_path / "ca.pem")
    revoke(server, bad, KEY_COMPROMISE)
    crl = tmp_path / "crl.pem"
    home = tmp_path / "home"
    ca_crl(server, gid, crl, home)
    srv = make_server_tls(tmp_path)

    tls = TlsServer(srv, ca, crl)
    cleanup(tls.stop)
    sidecar = Sidecar(server, gid, crl, home, f"kill -HUP {tls.proc.pid}")
    assert tls.handshake(good).startswith("accepted")
    assert tls.handshake(bad) == "refused certificate revoked"
    assert tls.handshake(later).startswith("accepted")

    # A revocation reaches the TLS server through the sidecar (file replaced, then --exec).
    revoke(server, later, CESSATION)
    tls.wait_for("reloaded")
    assert tls.handshake(later) == "refused certificate revoked"
    assert tls.handshake(good).startswith("accepted")  # and keeps passing across the refresh
    assert tls.handshake(bad) == "refused certificate revoked"
    sidecar.stop()
    tls.stop()

    # Past the file's nextUpdate (the sidecar stopped), every client is refused: why it exists.
    [c] = crls_in(crl.read_text())
    when = int(c.next_update_utc.timestamp()) + 120
    stale = TlsServer(srv, ca, crl, env=faked_env(when))
    cleanup(stale.stop)
    for leaf in (good, bad, later):
        assert stale.handshake(leaf) == "refused CRL has expired", leaf.user

    # The server, at that time too, has rebuilt the CRL (its refresh time passed); the sidecar
    # fetches it, the TLS server reloads, and the valid client passes again.
    server.stop()
    with monkeypatch.context() as m:
        for k, v in faked_env(when).items():
            m.setenv(k, v)
        server.start()  # the same data directory and database, its clock at `when`
    sidecar = Sidecar(server, gid, crl, home, f"kill -HUP {stale.proc.pid}")
    cleanup(sidecar.stop)
    stale.wait_for("reloaded")
    [fresh] = crls_in(crl.read_text())
    assert fresh.next_update_utc.timestamp() > when
    assert crl_number(fresh) > crl_number(c)
    assert stale.handshake(good).startswith("accepted")
    assert stale.handshake(bad) == "refused certificate revoked"
    assert stale.handshake(later) == "refused certificate revoked"


# ---------------------------------------------------------------- durability


def test_every_revocation_answered_2xx_before_a_kill_9_is_in_the_next_crl(make_server, tmp_path):
    server = make_server()
    gid = server.create_project()
    leaves = [issue(server, gid, tmp_path, f"l{i}") for i in range(24)]
    answered: list[Leaf] = []
    lock = threading.Lock()
    go = threading.Event()

    def burst(mine: list[Leaf]) -> None:
        s = requests.Session()
        s.auth = server.auth
        go.wait()
        for leaf in mine:
            try:
                r = s.post(revoke_url(server.root, leaf), json={"reason": KEY_COMPROMISE}, timeout=30)
            except requests.RequestException:
                return  # the server is gone
            if 200 <= r.status_code < 300:
                with lock:
                    answered.append(leaf)

    threads = [threading.Thread(target=burst, args=(leaves[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    go.set()
    # Kill the server mid-burst: once some revocations have been answered.
    deadline = time.monotonic() + 60
    while True:
        with lock:
            if len(answered) >= 6:
                break
        assert time.monotonic() < deadline, "no revocation answered"
        time.sleep(0.005)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=30)
    server.log.close()
    for t in threads:
        t.join(60)
    server.start()
    [c] = crls_in(get_crl(server, gid).text)
    in_crl = {e.serial_number for e in c}
    missing = [leaf.cert.serial_number for leaf in answered if leaf.cert.serial_number not in in_crl]
    assert not missing, f"answered 2xx but not in the CRL: {missing}"
    # And nothing that was never revoked is in it.
    assert in_crl <= {leaf.cert.serial_number for leaf in leaves}


# ---------------------------------------------------------------- many nodes


@pytest.mark.skipif(BACKEND == "sqlite", reason="multi-node tests run in the PostgreSQL pass of the suite")
def test_revoked_on_node_a_is_in_node_bs_crl_and_ocsp_at_once(new_database, nodes, tmp_path):
    a, b = two_nodes(nodes, new_database(), tmp_path)
    sa, sb = a.session(), b.session()
    gid = create_project(a, sa)
    user = unique_user("mn")
    create_user(a, sa, gid, user)
    r = sa.post(a.url(f"/groups/{gid}/databaseUsers/{user}/certs"), json={"monthsUntilExpiration": 1}, timeout=60)
    assert r.status_code == 201, r.text
    pem = split_pem(r.text)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pem.cert_pem)
    ca = tmp_path / "ca.pem"
    ca.write_text(subprocess.run([a.args[0], "ca", "export", "--project", gid, *a.store_args],
                                 check=True, capture_output=True, text=True).stdout)
    crl_of = {}
    for node, s in ((a, sa), (b, sb)):
        r = s.get(f"{node.root}/api/dbcerts/v1/groups/{gid}/crl", timeout=60)
        assert r.status_code == 200, r.text
        crl_of[node.name] = r.text
    assert crl_of["A"] == crl_of["B"], "both nodes serve the one published CRL"
    [first] = crls_in(crl_of["B"])
    assert len(first) == 0

    r = sa.post(revoke_url(a.root, Leaf(leaf, pem.cert, gid, user)), json={"reason": KEY_COMPROMISE}, timeout=60)
    assert r.status_code == 200, r.text
    r = sb.get(f"{b.root}/api/dbcerts/v1/groups/{gid}/crl", timeout=60)
    assert r.status_code == 200, r.text
    [now_b] = crls_in(r.text)
    assert [e.serial_number for e in now_b] == [pem.cert.serial_number]
    assert crl_number(now_b) == crl_number(first) + 1
    crl = tmp_path / "crl.pem"
    crl.write_text(r.text)
    code, text = verify(ca, crl, leaf)
    assert code != 0 and "certificate revoked" in text, text
    r = sa.get(f"{a.root}/api/dbcerts/v1/groups/{gid}/crl", timeout=60)
    assert r.text == crl.read_text(), "both nodes serve the one CRL published after the revocation"
    p = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(ca), "-CAfile", str(ca), "-cert", str(leaf),
         "-url", f"{b.root}/api/dbcerts/v1/ocsp/{gid}", "-timeout", "30"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "Response verify OK" in out and f"{leaf}: revoked" in out, out


# The multi-node fixtures and helpers of test_many_nodes.py (real nodes on one PostgreSQL).
from test_many_nodes import admin_url, create_project, create_user, new_database, nodes, two_nodes  # noqa: E402,F401
