"""A TLS server configured the way mongod checks client certificates, for test_crl.py.

    python _crl_tls_server.py CERT KEY CAFILE CRLFILE

Requires a client certificate that chains to CAFILE (mongod's net.tls.CAFile) and checks it
against the CRLs in CRLFILE (net.tls.CRLFile) with VERIFY_CRL_CHECK_LEAF, as mongod does. On
SIGHUP it reads CAFILE and CRLFILE again, the way `db.adminCommand({rotateCertificates: 1})`
makes mongod read the same paths again.

Prints `listening PORT` once, `reloaded` after each SIGHUP, and per connection `accepted CN`
(and sends `hello CN` to the client) or `refused REASON` (OpenSSL's verify error text). Runs
until killed. Under scripts/at-date it checks certificates and CRLs at the faked time.
"""

from __future__ import annotations

import signal
import socket
import ssl
import sys
import threading


def context(cert: str, key: str, ca: str, crl: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    ctx.load_verify_locations(cafile=ca)
    # A PEM file of CRLs loads like one of certificates (X509_load_cert_crl_file).
    ctx.load_verify_locations(cafile=crl)
    return ctx


def main() -> None:
    cert, key, ca, crl = sys.argv[1:5]
    current = {"ctx": context(cert, key, ca, crl)}
    reload = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    print(f"listening {listener.getsockname()[1]}", flush=True)
    while True:
        if reload.is_set():
            reload.clear()
            current["ctx"] = context(cert, key, ca, crl)
            print("reloaded", flush=True)
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(20)
        try:
            with current["ctx"].wrap_socket(conn, server_side=True) as tls:
                peer = tls.getpeercert()
                cn = dict(x[0] for x in peer["subject"])["commonName"]
                tls.sendall(f"hello {cn}\n".encode())
                print(f"accepted {cn}", flush=True)
        except ssl.SSLCertVerificationError as e:
            print(f"refused {e.verify_message}", flush=True)
        except (ssl.SSLError, OSError) as e:
            print(f"refused {e}", flush=True)


if __name__ == "__main__":
    main()
