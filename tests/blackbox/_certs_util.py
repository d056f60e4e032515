"""Helpers shared by test_clients.py and test_certificates.py.

Everything here is client-side tooling (PEM splitting, calendar arithmetic, a Jackson-style
pretty printer, throw-away TLS material, a one-shot mutual-TLS server). Nothing talks to the
server's internals.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import ipaddress
import json
import pathlib
import re
import socket
import ssl
import subprocess
import threading
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = dt.timezone.utc
ATLAS_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
PEM_BODY = re.compile(
    r"\A-----BEGIN CERTIFICATE-----\n((?:[A-Za-z0-9+/=]{1,64}\n)+)-----END CERTIFICATE-----\n"
    r"-----BEGIN PRIVATE KEY-----\n((?:[A-Za-z0-9+/=]{1,64}\n)+)-----END PRIVATE KEY-----\n\Z"
)


def unique_user(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- PEM handling


@dataclasses.dataclass
class IssuedPem:
    text: str
    cert_pem: bytes
    key_pem: bytes
    cert_b64: str  # base64 body of the CERTIFICATE block, newlines removed
    key_b64: str  # base64 body of the PRIVATE KEY block, newlines removed
    key_b64_lines: list[str]
    cert: x509.Certificate
    key: object  # a cryptography private key

    @property
    def key_der(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def split_pem(text: str) -> IssuedPem:
    """Checks the exact Atlas layout (cert, then unencrypted PKCS#8 key, LF, trailing LF)."""
    assert "\r" not in text, "PEM must use LF line endings"
    m = PEM_BODY.match(text)
    assert m, f"unexpected PEM layout:\n{text}"
    cert_lines = m.group(1).splitlines()
    key_lines = m.group(2).splitlines()
    # RFC 7468 strict encoding: every line but the last is exactly 64 columns.
    for lines in (cert_lines, key_lines):
        assert all(len(line) == 64 for line in lines[:-1]), lines
    cert_end = text.index("-----END CERTIFICATE-----\n") + len("-----END CERTIFICATE-----\n")
    cert_pem = text[:cert_end].encode()
    key_pem = text[cert_end:].encode()
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    # The key PEM is PKCS#8: re-encoding the parsed key as PKCS#8 gives back the same bytes.
    reenc = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert reenc == key_pem, "private key is not canonical unencrypted PKCS#8"
    # The key belongs to the certificate.
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)
    return IssuedPem(
        text=text,
        cert_pem=cert_pem,
        key_pem=key_pem,
        cert_b64="".join(cert_lines),
        key_b64="".join(key_lines),
        key_b64_lines=key_lines,
        cert=cert,
        key=key,
    )


# ---------------------------------------------------------------- dates


def parse_atlas_date(s: str) -> dt.datetime:
    assert ATLAS_DATE.match(s), f"not an Atlas date (YYYY-MM-DDTHH:MM:SSZ): {s!r}"
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def atlas_date(d: dt.datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_months(d: dt.datetime, months: int) -> dt.datetime:
    """Calendar months, same day and time; the day is clamped to the month's end (Java plusMonths)."""
    total = d.month - 1 + months
    year, month = d.year + total // 12, total % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return d.replace(year=year, month=month, day=day)


def now_utc() -> dt.datetime:
    return dt.datetime.now(UTC)


def assert_validity(cert: x509.Certificate, months: int, before: dt.datetime, after: dt.datetime) -> dt.datetime:
    """notBefore = creation - 1h, notAfter = creation + `months` calendar months.

    `before`/`after` bracket the issuing request; the creation time (notBefore + 1h) must lie
    within them (whole seconds, since X.509 UTCTime has no fractions).
    """
    nb = cert.not_valid_before_utc
    na = cert.not_valid_after_utc
    created = nb + dt.timedelta(hours=1)
    lo = before.replace(microsecond=0) - dt.timedelta(seconds=1)
    hi = after + dt.timedelta(seconds=1)
    assert lo <= created <= hi, f"notBefore {nb} is not 1h before the request ({before}..{after})"
    assert abs((nb - (before - dt.timedelta(hours=1))).total_seconds()) <= 120
    assert na == add_months(created, months), (
        f"notAfter {na} != creation {created} + {months} calendar months ({add_months(created, months)})"
    )
    return created


# ---------------------------------------------------------------- Jackson pretty printer


def jackson_pretty(value, depth: int = 0) -> str:
    """Jackson's DefaultPrettyPrinter: objects indented by two spaces per object level,
    `"key" : value`, arrays inline (`[ a, b ]`), `{ }` / `[ ]` when empty."""
    if isinstance(value, dict):
        if not value:
            return "{ }"
        inner = ",".join(
            "\n" + "  " * (depth + 1) + json.dumps(k, ensure_ascii=False) + " : " + jackson_pretty(v, depth + 1)
            for k, v in value.items()
        )
        return "{" + inner + "\n" + "  " * depth + "}"
    if isinstance(value, list):
        if not value:
            return "[ ]"
        return "[ " + ", ".join(jackson_pretty(v, depth) for v in value) + " ]"
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------- subprocess tools


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)


def openssl(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return run(["openssl", *args], input=input)


@dataclasses.dataclass
class CurlResult:
    status: int
    headers: dict[str, str]  # lower-cased names, of the final response
    body: str
    stderr: str
    all_statuses: list[int]


def parse_dump_header(raw: str) -> tuple[list[int], dict[str, str]]:
    """Parses a curl --dump-header file, which holds every response (challenge and final)."""
    blocks = [b for b in re.split(r"\r?\n\r?\n", raw) if b.strip()]
    statuses: list[int] = []
    headers: dict[str, str] = {}
    for block in blocks:
        lines = block.splitlines()
        statuses.append(int(lines[0].split()[1]))
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return statuses, headers


def curl(command: str, tmp: pathlib.Path) -> CurlResult:
    """Runs a documented curl command line through bash, adding only --dump-header."""
    hdr = tmp / f"hdr-{uuid.uuid4().hex}.txt"
    assert command.startswith("curl ")
    full = f"curl --dump-header '{hdr}' " + command[len("curl ") :]
    p = subprocess.run(["bash", "-c", full], capture_output=True, timeout=60)
    assert p.returncode == 0, f"curl failed ({p.returncode}): {p.stderr.decode()}"
    statuses, headers = parse_dump_header(hdr.read_text())
    return CurlResult(statuses[-1], headers, p.stdout.decode(), p.stderr.decode(), statuses)


# ---------------------------------------------------------------- TLS material and mutual TLS


@dataclasses.dataclass
class ServerTls:
    ca_path: pathlib.Path
    cert_path: pathlib.Path
    key_path: pathlib.Path


def make_server_tls(tmp: pathlib.Path) -> ServerTls:
    """A throw-away CA and a server certificate for 127.0.0.1 (unrelated to dbcerts)."""
    now = now_utc()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throwaway test server CA")])
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
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    tls = ServerTls(tmp / "srv-ca.pem", tmp / "srv.pem", tmp / "srv.key")
    tls.ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return tls


@dataclasses.dataclass
class HandshakeResult:
    server_peer: dict | None  # getpeercert() as seen by the server
    server_error: BaseException | None
    client_received: bytes
    client_error: BaseException | None


def mutual_tls(srv: ServerTls, trusted_client_ca: pathlib.Path, client_chain: pathlib.Path) -> HandshakeResult:
    """One connection to a Python TLS server that requires a client certificate signed by
    `trusted_client_ca`; the client presents `client_chain` (the PEM file dbcerts returned)."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(srv.cert_path, srv.key_path)
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(cafile=str(trusted_client_ca))

    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(cafile=str(srv.ca_path))
    cctx.load_cert_chain(str(client_chain))

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)
    port = listener.getsockname()[1]
    out: dict = {"peer": None, "error": None}

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(20)
            with sctx.wrap_socket(conn, server_side=True) as tls:
                out["peer"] = tls.getpeercert()
                cn = dict(x[0] for x in out["peer"]["subject"])["commonName"]
                tls.sendall(f"hello {cn}\n".encode())
        except BaseException as e:  # noqa: BLE001 - reported to the test
            out["error"] = e
        finally:
            listener.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    received = b""
    client_error = None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            with cctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                while True:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    received += chunk
    except (ssl.SSLError, ConnectionError, OSError) as e:
        client_error = e
    t.join(30)
    assert not t.is_alive(), "TLS server thread hung"
    return HandshakeResult(out["peer"], out["error"], received, client_error)


def make_cert(
    cn: str,
    *,
    ca: bool | None = True,
    key_cert_sign: bool | None = True,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> str:
    """A self-signed certificate as PEM. `ca=None` omits BasicConstraints; `key_cert_sign=None`
    omits KeyUsage."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=365))
    )
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if key_cert_sign is not None:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                crl_sign=key_cert_sign, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    cert = b.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode()
