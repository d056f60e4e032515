"""Fixtures that start the real `dbcerts` binary on an ephemeral loopback port.

Every black-box test talks to a real server process over a real socket, with a real SQLite
file in a temporary data directory. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import tempfile
import uuid

import pytest
import requests
from requests.auth import HTTPDigestAuth

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC_DIR = ROOT.parent / "shared" / "spec"
V2 = "application/vnd.atlas.2023-01-01+json"


def dbcerts_bin() -> str:
    path = os.environ.get("DBCERTS_BIN") or str(ROOT / "target" / "debug" / "dbcerts")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "-p", "dbcerts"], cwd=ROOT, check=True)
    return path


class Server:
    """A running `dbcerts serve` and the bootstrap credentials it wrote."""

    def __init__(self, data_dir: pathlib.Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        self.args = [
            dbcerts_bin(),
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            *extra_args,
        ]
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        env = dict(os.environ, DBCERTS_LOG=os.environ.get("DBCERTS_LOG", "info"))
        self.log_path = self.data_dir / "server.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.log, env=env)
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}\n{self.log_path.read_text()}")
        self.root = line.strip().rsplit(" ", 1)[-1]
        self.host_port = self.root.removeprefix("http://")
        creds = json.loads((self.data_dir / "bootstrap-credentials.json").read_text())
        self.org_id = creds["orgId"]
        self.public_key = creds["publicKey"]
        self.private_key = creds["privateKey"]
        self.auth = HTTPDigestAuth(self.public_key, self.private_key)
        self.session = requests.Session()
        self.session.auth = self.auth

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code

    # ---- convenience over the real API (requests + HTTPDigestAuth) ----
    def url(self, path: str, version: str = "v2") -> str:
        return f"{self.root}/api/atlas/{version}{path}"

    def call(self, method: str, path: str, *, version: str = "v2", accept: str | None = V2, **kw):
        headers = kw.pop("headers", {})
        if accept is not None and version == "v2":
            headers.setdefault("Accept", accept)
        return self.session.request(method, self.url(path, version), headers=headers, timeout=60, **kw)

    def create_project(self, name: str | None = None) -> str:
        name = name or f"p-{uuid.uuid4().hex[:12]}"
        r = self.call("POST", "/groups", json={"name": name, "orgId": self.org_id})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def create_user(self, group_id: str, username: str, x509_type: str = "MANAGED", **fields) -> dict:
        body = {
            "databaseName": "$external" if x509_type != "NONE" else "admin",
            "username": username,
            "x509Type": x509_type,
            "roles": [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}],
            "groupId": group_id,
            **fields,
        }
        r = self.call("POST", f"/groups/{group_id}/databaseUsers", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def create_cert(self, group_id: str, username: str, months: int = 3) -> str:
        r = self.call(
            "POST",
            f"/groups/{group_id}/databaseUsers/{username}/certs",
            json={"monthsUntilExpiration": months},
        )
        assert r.status_code == 201, r.text
        return r.text

    def export_ca(self, group_id: str) -> str:
        out = subprocess.run(
            [dbcerts_bin(), "ca", "export", "--project", group_id, "--data-dir", str(self.data_dir)],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout


def _server(tmp_root: pathlib.Path, *args: str):
    data = pathlib.Path(tempfile.mkdtemp(dir=tmp_root))
    s = Server(data, *args)
    try:
        yield s
    finally:
        if s.proc and s.proc.poll() is None:
            code = s.stop()
            assert code == 0, f"server exited with {code}; log:\n{s.log_path.read_text()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server issuing ECDSA P-256 keys (fast), for behaviour tests."""
    yield from _server(tmp_path_factory.mktemp("ec"), "--key-algorithm", "ecdsa-p256", "--key-pool-size", "4")


@pytest.fixture(scope="module")
def rsa_server(tmp_path_factory):
    """A server with the Atlas defaults: RSA-4096 keys from a small key pool."""
    yield from _server(tmp_path_factory.mktemp("rsa"), "--key-pool-size", "2")


@pytest.fixture()
def fresh_server(tmp_path):
    """A server of the test's own, for tests that stop or restart it."""
    yield from _server(tmp_path, "--key-algorithm", "ecdsa-p256", "--key-pool-size", "2")
