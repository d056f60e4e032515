"""Files and endpoints that must not show too much (issue 15, item 5), against the real binary:

- every file `serve` creates in its data directory is 0600 whatever the umask (the SQLite
  database, its `-wal`/`-shm`, the lock files, the master key, the bootstrap credentials);
- a data directory that group or others can enter stops `serve` with a message saying why and
  how to fix it, unless `--allow-readable-data-dir` (or its config key) says so;
- `/metrics` (every organization's project ids) is served on `--metrics-listen` only; the API's
  address answers it with Atlas's 404, and `/health/*` stays open there;
- a request head over the budget (a 2 MB header, 500 header fields) gets 431 in Atlas's format
  over a real socket, on HTTP/1.1 and HTTP/2, instead of hyper's empty 431.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import stat
import subprocess
import tempfile

import pytest
import requests

from conftest import Server, _server, dbcerts_bin, toml_config

ATLAS_KEYS = ["detail", "error", "errorCode", "parameters", "reason"]
SERVER_FILES = {
    "dbcerts.db",
    "dbcerts.db-wal",
    "dbcerts.db-shm",
    "dbcerts.db.serve.lock",
    "dbcerts.db.migrate.lock",
    "master.key",
    "bootstrap-credentials.json",
}
FAST = ("--key-algorithm", "ecdsa-p256", "--key-pool-size", "1")


def _private_dir(tmp: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(tempfile.mkdtemp(dir=tmp))


def _sqlite(data: pathlib.Path) -> tuple[str, str]:
    # File modes are about the SQLite files: this test runs SQLite on either backend run.
    return ("--database-url", f"sqlite://{data / 'dbcerts.db'}")


# ------------------------------------------------------------------ files


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_every_file_serve_creates_is_private_whatever_the_umask(tmp_path, umask):
    data = _private_dir(tmp_path)
    old = os.umask(umask)
    try:
        s = Server(data, *FAST, *_sqlite(data))
    finally:
        os.umask(old)
    try:
        gid = s.create_project()
        s.create_user(gid, "alice")
        s.create_cert(gid, "alice")
        names = {p.name for p in data.iterdir()} - {"server.log"}  # server.log is the harness's
        assert SERVER_FILES <= names, names
        modes = {n: stat.S_IMODE((data / n).stat().st_mode) for n in names}
        assert modes == {n: 0o600 for n in names}, {n: oct(m) for n, m in modes.items()}
    finally:
        assert s.stop() == 0


def _serve_fails(data: pathlib.Path, *args: str) -> str:
    p = subprocess.run(
        [dbcerts_bin(), "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0",
         *(() if "--metrics-listen" in args else ("--metrics-listen", "127.0.0.1:0")), *FAST, *args],
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode != 0, p.stdout
    assert "listening" not in p.stdout
    return p.stderr


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o711, 0o705])
def test_a_data_directory_others_can_enter_stops_serve(tmp_path, mode):
    data = _private_dir(tmp_path)
    data.chmod(mode)
    err = _serve_fails(data)
    assert f"its mode is {mode:o}" in err, err
    assert "holds the database, the master key and the bootstrap API key" in err, err
    assert f"chmod 700 {data}" in err, err
    assert "--allow-readable-data-dir" in err, err
    assert list(data.iterdir()) == [], "a refused start created nothing"
    # The fix the message gives works.
    data.chmod(0o700)
    s = Server(data, *FAST)
    assert s.call("GET", "/groups").status_code == 200
    assert s.stop() == 0


def test_allow_readable_data_dir_by_flag_or_config(tmp_path):
    data = _private_dir(tmp_path)
    data.chmod(0o750)
    s = Server(data, *FAST, "--allow-readable-data-dir")
    assert s.call("GET", "/groups").status_code == 200
    assert s.stop() == 0
    assert "open to group or others" in s.log_path.read_text()
    # The same from the config file (on the same database); the files in it are still private.
    same_db = ("--database-url", s.database_url) if s.database_url else ()
    config = toml_config(tmp_path / "allow.toml", allow_readable_data_dir=True)
    s = Server(data, *FAST, "--config", str(config), *same_db)
    assert s.call("GET", "/groups").status_code == 200
    assert s.stop() == 0
    for name in ("master.key", "bootstrap-credentials.json"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    # A false flag beats a true config key.
    err = _serve_fails(data, "--config", str(config), "--allow-readable-data-dir=false")
    assert "chmod 700" in err, err


# ------------------------------------------------------------------ metrics


def test_metrics_only_on_their_own_listener(make_server):
    s = make_server()
    gid = s.create_project()
    s.create_user(gid, "alice")
    s.create_cert(gid, "alice")
    assert s.metrics_url.startswith("http://127.0.0.1:"), s.metrics_url
    assert not s.metrics_url.startswith(s.root), "not the API's address"

    scraped = requests.get(s.metrics_url, timeout=30)
    assert scraped.status_code == 200
    assert scraped.headers["Content-Type"].startswith("text/plain")
    assert f'group_id="{gid}"' in scraped.text

    # The API's address: Atlas's 404, with nothing of the metrics in it.
    r = requests.get(f"{s.root}/metrics", timeout=30)
    assert r.status_code == 404
    body = r.json()
    assert sorted(body) == ATLAS_KEYS and body["errorCode"] == "RESOURCE_NOT_FOUND", body
    assert gid not in r.text and "dbcerts_" not in r.text
    # Health checks stay open on the API's address, and are not on the metrics listener.
    for path in ("/health/live", "/health/ready"):
        r = requests.get(f"{s.root}{path}", timeout=30)
        assert r.status_code == 200 and r.json() == {"status": "ok"}, path
    metrics_root = s.metrics_url.rsplit("/metrics", 1)[0]
    for path in ("/health/live", "/api/atlas/v2/groups"):
        r = requests.get(f"{metrics_root}{path}", timeout=30)
        assert r.status_code == 404 and r.json()["errorCode"] == "RESOURCE_NOT_FOUND", path


def test_metrics_listen_from_config_and_a_taken_address(tmp_path):
    # An address in use stops startup, naming the setting.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = _serve_fails(_private_dir(tmp_path), "--metrics-listen", f"127.0.0.1:{port}")
    assert f"--metrics-listen 127.0.0.1:{port}" in err, err
    # A bad value in the config file is refused by name.
    bad = toml_config(tmp_path / "bad.toml", metrics_listen="not an address")
    proc = subprocess.run(
        [dbcerts_bin(), "serve", "--data-dir", str(_private_dir(tmp_path)), "--listen", "127.0.0.1:0",
         "--config", str(bad), *FAST],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0 and "--metrics-listen" in proc.stderr and "not an address" in proc.stderr
    # A good one is where metrics are served.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    good = toml_config(tmp_path / "good.toml", metrics_listen=f"127.0.0.1:{free}")
    data = _private_dir(tmp_path)
    proc = subprocess.Popen(
        [dbcerts_bin(), "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0", *_sqlite(data),
         "--config", str(good), *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert "listening on" in proc.stdout.readline().decode()
        line = proc.stdout.readline().decode().strip()
        assert line == f"dbcerts metrics on http://127.0.0.1:{free}/metrics", line
        assert requests.get(f"http://127.0.0.1:{free}/metrics", timeout=30).status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


# ------------------------------------------------------------------ request heads


def _raw(host_port: str, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends one request head on a new connection; returns the status, headers and body."""
    host, port = host_port.split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


def _assert_431(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 431, (status, headers, body[:200])
    assert headers["content-type"] == "application/json", headers
    assert headers["connection"] == "close", headers
    doc = json.loads(body)
    assert sorted(doc) == ATLAS_KEYS, doc
    assert doc["error"] == 431 and doc["reason"] == "Request Header Fields Too Large", doc
    assert doc["errorCode"] == "REQUEST_HEADERS_TOO_LARGE", doc
    assert "100 header fields" in doc["detail"] and "262144 bytes" in doc["detail"], doc
    assert headers["x-error-code"] == "REQUEST_HEADERS_TOO_LARGE"


def _get(path: str, host_port: str, extra: list[tuple[str, str]]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host_port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture(scope="module")
def heads_server(tmp_path_factory):
    yield from _server(tmp_path_factory.mktemp("heads"), *FAST)


@pytest.mark.parametrize("path", ["/health/live", "/api/atlas/v2/groups", "/no/such/path"])
def test_a_2_mb_header_gets_atlas_431(heads_server, path):
    s = heads_server
    head = _get(path, s.host_port, [("X-Big", "a" * (2 * 1024 * 1024))])
    _assert_431(*_raw(s.host_port, head))
    assert requests.get(f"{s.root}/health/live", timeout=30).status_code == 200, "still serving"


@pytest.mark.parametrize("path", ["/health/live", "/api/atlas/v2/groups"])
def test_500_headers_get_atlas_431(heads_server, path):
    s = heads_server
    head = _get(path, s.host_port, [(f"X-H-{i}", "v") for i in range(500)])
    _assert_431(*_raw(s.host_port, head))


def test_the_metrics_listener_shapes_its_431_too(heads_server):
    s = heads_server
    host_port = s.metrics_url.split("://", 1)[1].split("/", 1)[0]
    _assert_431(*_raw(host_port, _get("/metrics", host_port, [(f"X-H-{i}", "v") for i in range(500)])))


def test_heads_within_the_budget_are_served(heads_server):
    s = heads_server
    # 97 fields of ours + Host + Connection = 99; and a 200 KB header: both under the budget.
    status, _, body = _raw(s.host_port, _get("/health/live", s.host_port, [(f"X-H-{i}", "v") for i in range(97)]))
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, body = _raw(s.host_port, _get("/health/live", s.host_port, [("X-Big", "a" * 200_000)]))
    assert (status, json.loads(body)) == (200, {"status": "ok"})


def test_over_http2_too(heads_server):
    """HTTP/2 (prior knowledge, curl with nghttp2): 500 header fields get the same answer."""
    s = heads_server
    args = ["curl", "-sS", "--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code} %{http_version}"]
    for i in range(500):
        args += ["-H", f"X-H-{i}: v"]
    out = subprocess.run([*args, f"{s.root}/health/live"], capture_output=True, text=True, timeout=60, check=True)
    body, _, status_line = out.stdout.rpartition("\n")
    assert status_line == "431 2", out.stdout[-300:]
    doc = json.loads(body)
    assert sorted(doc) == ATLAS_KEYS and doc["errorCode"] == "REQUEST_HEADERS_TOO_LARGE", doc
