"""HTTPS on the API itself: `serve --tls-cert/--tls-key` against real TLS clients (curl, Python
`requests`), certificate reload on SIGHUP without dropping connections, and the refusal to
serve plain HTTP on a non-loopback address.

Every certificate here comes from a throw-away CA made by the test; none is issued by dbcerts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import os
import pathlib
import signal
import subprocess
import tempfile
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from requests.auth import HTTPDigestAuth

from conftest import V2, Server, _server, dbcerts_bin

FAST = ("--key-algorithm", "ecdsa-p256", "--key-pool-size", "1")


# ------------------------------------------------------------------ throw-away PKI


@dataclasses.dataclass
class Pki:
    """A CA (its certificate in `ca`) and a server certificate it signed for 127.0.0.1 and
    localhost."""

    ca: pathlib.Path
    cert_pem: bytes
    key_pem: bytes

    def install(self, cert: pathlib.Path, key: pathlib.Path) -> None:
        """Replaces the served files the way a renewal tool does: write aside, then rename."""
        for path, data, mode in ((key, self.key_pem, 0o600), (cert, self.cert_pem, 0o644)):
            tmp = path.with_suffix(".new")
            tmp.write_bytes(data)
            tmp.chmod(mode)
            os.replace(tmp, path)


def make_pki(tmp: pathlib.Path, name: str) -> Pki:
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"dbcerts test {name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = tmp / f"{name}-ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return Pki(
        ca=ca_path,
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


# ------------------------------------------------------------------ fixtures and helpers


@dataclasses.dataclass
class TlsServer:
    server: Server
    first: Pki
    cert: pathlib.Path
    key: pathlib.Path
    tmp: pathlib.Path

    @property
    def port(self) -> int:
        return int(self.server.host_port.rsplit(":", 1)[1])

    def url(self, path: str = "/groups") -> str:
        return f"https://127.0.0.1:{self.port}/api/atlas/v2{path}"

    def session(self, ca: pathlib.Path) -> requests.Session:
        s = requests.Session()
        s.auth = HTTPDigestAuth(self.server.public_key, self.server.private_key)
        return trusting(s, ca)


def trusting(session: requests.Session, ca: pathlib.Path) -> requests.Session:
    """Makes `session` trust `ca` only. Without trust_env=False, a REQUESTS_CA_BUNDLE in the
    environment would quietly replace `verify`."""
    session.verify = str(ca)
    session.trust_env = False
    return session


@pytest.fixture()
def tls_server(tmp_path):
    first = make_pki(tmp_path, "first")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    first.install(cert, key)
    for s in _server(tmp_path, *FAST, "--tls-cert", str(cert), "--tls-key", str(key)):
        trusting(s.session, first.ca)
        yield TlsServer(s, first, cert, key, tmp_path)


def list_groups(session: requests.Session, url: str) -> requests.Response:
    r = session.get(url, headers={"Accept": V2}, timeout=30)
    assert r.status_code == 200, r.text
    assert "results" in r.json()
    return r


def handshake_fails(ca: pathlib.Path | None, url: str) -> bool:
    """Whether a client trusting only `ca` (None: the system's trust store) fails to connect."""
    session = requests.Session()
    session.trust_env = ca is None
    try:
        session.get(url, verify=str(ca) if ca else True, timeout=10)
    except requests.exceptions.SSLError:
        return True
    return False


def pool_of(session: requests.Session, url: str):
    """The urllib3 connection pool a session uses for `url` (it counts connections it opened)."""
    return session.get_adapter(url).poolmanager.connection_from_url(url)


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, text=True, timeout=60)


def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class WildcardServer(Server):
    """conftest's Server, listening on 0.0.0.0 (every interface) instead of 127.0.0.1."""

    def start(self) -> None:
        self.args = ["0.0.0.0:0" if a == "127.0.0.1:0" else a for a in self.args]
        super().start()


def wildcard_server(tmp: pathlib.Path, *args: str):
    s = WildcardServer(pathlib.Path(tempfile.mkdtemp(dir=tmp)), *FAST, *args)
    try:
        yield s
    finally:
        if s.proc and s.proc.poll() is None:
            assert s.stop() == 0, s.log_path.read_text()


def serve_fails(tmp: pathlib.Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Runs `serve` expecting it to stop at startup; returns its stderr."""
    data = tmp / "refused-data"
    p = subprocess.run(
        [dbcerts_bin(), "serve", "--data-dir", str(data), *FAST, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, **(env or {})),
    )
    assert p.returncode != 0, p.stdout
    assert "listening" not in p.stdout
    assert not (data / "bootstrap-credentials.json").exists(), "a refused start created nothing"
    return p.stderr


# ------------------------------------------------------------------ HTTPS with real clients


def test_startup_line_announces_https(tls_server):
    assert tls_server.server.root.startswith("https://127.0.0.1:"), tls_server.server.root


def test_curl_trusting_the_ca_lists_projects(tls_server):
    s = tls_server.server
    for host in ("127.0.0.1", "localhost"):
        p = curl(
            "--fail",
            "--cacert", str(tls_server.first.ca),
            "--resolve", f"localhost:{tls_server.port}:127.0.0.1",
            "--digest", "--user", f"{s.public_key}:{s.private_key}",
            "--header", f"Accept: {V2}",
            f"https://{host}:{tls_server.port}/api/atlas/v2/groups",
        )
        assert p.returncode == 0, p.stderr
        assert "results" in json.loads(p.stdout)


def test_curl_not_trusting_the_ca_fails_the_handshake(tls_server):
    p = curl("--digest", "--user", "a:b", tls_server.url())
    assert p.returncode == 60, (p.returncode, p.stderr)  # CURLE_PEER_FAILED_VERIFICATION


def test_requests_with_verify_set_to_the_ca(tls_server):
    list_groups(tls_server.session(tls_server.first.ca), tls_server.url())
    # The fixture's own session, through conftest's helpers.
    r = tls_server.server.call("GET", "/groups")
    assert r.status_code == 200, r.text
    assert handshake_fails(None, tls_server.url()), "the system trust store does not know this CA"


def test_plain_http_to_the_tls_port_fails(tls_server):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{tls_server.port}/api/atlas/v2/groups", timeout=10)
    p = curl(f"http://127.0.0.1:{tls_server.port}/api/atlas/v2/groups")
    assert p.returncode != 0, p.stdout
    # The server shrugs it off and keeps serving HTTPS.
    list_groups(tls_server.session(tls_server.first.ca), tls_server.url())


# ------------------------------------------------------------------ SIGHUP reload


def test_sighup_reloads_the_certificate_without_dropping_connections(tls_server):
    url = tls_server.url()
    old = tls_server.session(tls_server.first.ca)
    list_groups(old, url)
    pool = pool_of(old, url)
    opened = pool.num_connections

    second = make_pki(tls_server.tmp, "second")
    second.install(tls_server.cert, tls_server.key)
    tls_server.server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: not handshake_fails(second.ca, url), "the new certificate to be served")

    list_groups(old, url)
    assert pool.num_connections == opened, "the request went over the connection made before the reload"
    list_groups(tls_server.session(second.ca), url)
    assert handshake_fails(tls_server.first.ca, url), "new handshakes get the new certificate only"
    p = curl("--fail", "--cacert", str(second.ca), "--digest", "--user",
             f"{tls_server.server.public_key}:{tls_server.server.private_key}",
             "--header", f"Accept: {V2}", url)
    assert p.returncode == 0, p.stderr
    assert tls_server.server.proc.poll() is None


def test_failed_reload_keeps_the_old_certificate(tls_server):
    url = tls_server.url()
    tls_server.key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    tls_server.server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in tls_server.server.log_path.read_text(), "the reload error in the log")
    log = tls_server.server.log_path.read_text()
    assert str(tls_server.key) in log, log
    assert tls_server.server.proc.poll() is None, "a bad file does not stop the server"
    list_groups(tls_server.session(tls_server.first.ca), url)

    # Half-replaced files (new certificate, old key) are refused too, and fixing them works.
    second = make_pki(tls_server.tmp, "second")
    tls_server.cert.write_bytes(second.cert_pem)
    tls_server.key.write_bytes(tls_server.first.key_pem)
    tls_server.server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: tls_server.server.log_path.read_text().count("reload failed") >= 2, "a second reload error")
    list_groups(tls_server.session(tls_server.first.ca), url)
    second.install(tls_server.cert, tls_server.key)
    tls_server.server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: not handshake_fails(second.ca, url), "the fixed certificate to be served")


# ------------------------------------------------------------------ startup checks


def test_plain_http_on_a_non_loopback_address_is_refused(tmp_path):
    err = serve_fails(tmp_path, "--listen", "0.0.0.0:0")
    assert "not a loopback address" in err, err
    assert "private keys and bearer tokens" in err, err
    assert "--tls-cert" in err and "--tls-key" in err and "--allow-plaintext" in err, err


@pytest.mark.parametrize("how", ["flag", "env", "toml"])
def test_allow_plaintext_serves_http_on_a_non_loopback_address(tmp_path, monkeypatch, how):
    args = []
    if how == "flag":
        args.append("--allow-plaintext")
    elif how == "env":
        monkeypatch.setenv("DBCERTS_ALLOW_PLAINTEXT", "true")
    else:
        config = tmp_path / "dbcerts.toml"
        config.write_text("allow-plaintext = true\n")
        args += ["--config", str(config)]
    for s in wildcard_server(tmp_path, *args):
        assert s.root.startswith("http://0.0.0.0:"), s.root
        port = s.host_port.rsplit(":", 1)[1]
        r = s.session.get(f"http://127.0.0.1:{port}/api/atlas/v2/groups", headers={"Accept": V2}, timeout=30)
        assert r.status_code == 200, r.text


def test_tls_serves_on_a_non_loopback_address(tmp_path, monkeypatch):
    first = make_pki(tmp_path, "first")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    first.install(cert, key)
    # Through the environment this time.
    monkeypatch.setenv("DBCERTS_TLS_CERT", str(cert))
    monkeypatch.setenv("DBCERTS_TLS_KEY", str(key))
    for s in wildcard_server(tmp_path):
        assert s.root.startswith("https://0.0.0.0:"), s.root
        port = s.host_port.rsplit(":", 1)[1]
        trusting(s.session, first.ca)
        r = s.session.get(f"https://127.0.0.1:{port}/api/atlas/v2/groups", headers={"Accept": V2}, timeout=30)
        assert r.status_code == 200, r.text


def test_one_tls_file_without_the_other_is_refused(tmp_path):
    first = make_pki(tmp_path, "first")
    cert = tmp_path / "server.crt"
    cert.write_bytes(first.cert_pem)
    err = serve_fails(tmp_path, "--tls-cert", str(cert))
    assert "--tls-key is not" in err, err
    err = serve_fails(tmp_path, env={"DBCERTS_TLS_KEY": str(cert)})
    assert "--tls-cert is not" in err, err


def test_unusable_tls_files_are_refused_naming_the_file(tmp_path):
    first = make_pki(tmp_path, "first")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    first.install(cert, key)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    missing = tmp_path / "missing.pem"
    err = serve_fails(tmp_path, "--tls-cert", str(missing), "--tls-key", str(key))
    assert str(missing) in err, err
    err = serve_fails(tmp_path, "--tls-cert", str(garbage), "--tls-key", str(key))
    assert str(garbage) in err and "CERTIFICATE" in err, err
    err = serve_fails(tmp_path, "--tls-cert", str(cert), "--tls-key", str(garbage))
    assert str(garbage) in err and "PRIVATE KEY" in err, err
    other = make_pki(tmp_path, "other")
    other_key = tmp_path / "other.key"
    other_key.write_bytes(other.key_pem)
    err = serve_fails(tmp_path, "--tls-cert", str(cert), "--tls-key", str(other_key))
    assert str(other_key) in err and str(cert) in err, err
