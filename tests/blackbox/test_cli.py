"""The `dbcerts` client commands (config, projects, dbusers, certs chores, security, orgs,
serviceAccounts, completion, mongod-config), driven the way a user drives them: the real binary
in a subprocess, talking over real HTTP to a real `dbcerts serve`.

Every test runs the CLI with a home directory of its own (HOME, XDG_CONFIG_HOME and
XDG_CACHE_HOME point into the test's tmp directory) and with every `MONGODB_ATLAS_*` and
`DBCERTS_*` variable of the outer environment removed, so profiles, token caches and settings
cannot leak between tests or from the developer's machine. Stdin is /dev/null unless a test
says otherwise, so the CLI never finds a terminal to prompt on; where a test needs a terminal
(refusing to print a key to one, the renewal progress bar) it gives the CLI a pseudo-terminal.

What a command claims is checked against the server through the API (requests + Digest), not
against the CLI's own output: a created user is read back, a deleted project answers 404, a
renewed certificate is listed by the server, verifies against the project CA (`dbcerts ca
export`) and is loaded by Python's ssl module. Atlas error codes the CLI must show are taken
from the server's own answer to the same request, not written down here. Private keys and
secrets that pass through a test are remembered, so the session-end scan of the server logs
(conftest) covers them too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import os
import pathlib
import pty
import re
import select
import socket
import sqlite3
import ssl
import stat
import struct
import subprocess
import termios
import time
import tomllib
import uuid
from urllib.parse import quote

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import NameOID
from requests.auth import HTTPDigestAuth

from _certs_util import add_months, make_server_tls, split_pem, unique_user
from conftest import (
    BACKEND,
    SA_V,
    V2,
    create_service_account,
    dbcerts_bin,
    get_token,
    remember_private_key,
    remember_secret,
)

EXIT_LOCAL, EXIT_USAGE, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_SERVER, EXIT_TRANSPORT = 1, 2, 3, 4, 5, 6
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
# The client commands; the organization noun is `orgs` or `organizations` (one is the other's alias).
CLIENT_NOUNS = ("config", "projects", "dbusers", "security", "serviceAccounts", "completion", "mongod-config")
ORG_NOUNS = ("orgs", "organizations")

# Table headers, whitespace-normalized (columns are aligned with runs of spaces).
PROJECTS_HEADER = "ID NAME ORG ID CREATED"
USERS_HEADER = "USERNAME DATABASE X509 TYPE ROLES"
CERTS_HEADER = "ID CREATED AT NOT AFTER SUBJECT"
EXPIRING_HEADER = "PROJECT ID USERNAME SERIAL NOT AFTER EXPIRES IN"
API_KEYS_HEADER = "ID PUBLIC KEY DESCRIPTION ROLES"
SERVICE_ACCOUNTS_HEADER = "CLIENT ID NAME DESCRIPTION ROLES"
PAGE_KEYS = {"links", "results", "totalCount"}


# ------------------------------------------------------------------ running the CLI


def cli_env(home: pathlib.Path, env_extra: dict | None = None) -> dict[str, str]:
    """The outer environment without any MONGODB_ATLAS_* / DBCERTS_* setting, with HOME and the
    XDG config and cache directories inside `home`, plus `env_extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_ATLAS_", "DBCERTS_"))}
    config, cache = home / ".config", home / ".cache"
    config.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(config), XDG_CACHE_HOME=str(cache))
    env.update(env_extra or {})
    return env


def run(args, *, env_extra: dict | None = None, input: str | None = None, home: pathlib.Path):
    """Runs `dbcerts ARGS` with pipes for stdout and stderr and /dev/null (or `input`) as stdin."""
    return subprocess.run(
        [dbcerts_bin(), *map(str, args)],
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(home, env_extra),
    )


def show(p: subprocess.CompletedProcess) -> str:
    return f"exit {p.returncode}\n--- stdout:\n{p.stdout}\n--- stderr:\n{p.stderr}"


@dataclasses.dataclass
class TtyRun:
    code: int
    raw: bytes  # what the terminal received
    text: str  # the same, decoded, with the terminal's CRLF turned back into LF
    stderr: str  # stderr when it was a pipe, else ""


def run_tty(args, *, home: pathlib.Path, stderr_tty: bool = True, timeout: float = 120) -> TtyRun:
    """Runs `dbcerts ARGS` with stdout (and, unless `stderr_tty` is false, stderr) on a
    pseudo-terminal of 40x160; stdin is /dev/null. Reads the terminal until the CLI exits."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    try:
        proc = subprocess.Popen(
            [dbcerts_bin(), *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave if stderr_tty else subprocess.PIPE,
            env=cli_env(home, {"TERM": "xterm-256color"}),
        )
    finally:
        os.close(slave)
    raw = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                shown = raw.decode(errors="replace")
                pytest.fail(f"dbcerts {args} did not finish under a terminal; it showed:\n{shown}")
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the CLI closed its end of the terminal
                break
            if not chunk:
                break
            raw += chunk
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.stderr:
            proc.stderr.close()
    text = bytes(raw).decode(errors="replace").replace("\r\n", "\n")
    return TtyRun(code, bytes(raw), text, stderr)


@dataclasses.dataclass
class Cli:
    """The CLI with one home directory (and so one config file and token cache)."""

    server: object
    home: pathlib.Path
    gid: str | None = None

    def run(self, *args, env_extra: dict | None = None, input: str | None = None):
        return run(args, env_extra=env_extra, input=input, home=self.home)

    def expect(self, code: int, *args, **kw) -> subprocess.CompletedProcess:
        p = self.run(*args, **kw)
        assert p.returncode == code, f"dbcerts {' '.join(map(str, args))}: expected exit {code}\n{show(p)}"
        return p

    def ok(self, *args, **kw) -> str:
        return self.expect(0, *args, **kw).stdout

    def json_out(self, *args, **kw):
        out = self.ok(*args, "-o", "json", **kw)
        try:
            return json.loads(out)
        except json.JSONDecodeError as e:
            raise AssertionError(f"dbcerts {' '.join(map(str, args))} -o json printed no JSON ({e}):\n{out}") from None


def init_args(server, *, gid=None, base_url=None, public=None, private=None) -> list[str]:
    args = [
        "config", "init",
        "--baseUrl", base_url or server.root,
        "--publicApiKey", public or server.public_key,
        "--privateApiKey", private or server.private_key,
        "--orgId", server.org_id,
    ]  # fmt: skip
    return args + (["--projectId", gid] if gid else [])


def login(server, home: pathlib.Path, *extra, gid=None, base_url=None, public=None, private=None) -> Cli:
    """`dbcerts config init` with flags only (no terminal); returns the CLI for that home."""
    p = run([*init_args(server, gid=gid, base_url=base_url, public=public, private=private), *extra], home=home)
    assert p.returncode == 0, show(p)
    return Cli(server, home, gid)


@pytest.fixture()
def cli(server, tmp_path) -> Cli:
    """The CLI with a default profile for the shared server's bootstrap key and a new project."""
    return login(server, tmp_path / "home", gid=server.create_project())


def env_vars(prefix: str, **values) -> dict[str, str]:
    """`env_vars("DBCERTS_", base_url=...)` -> {"DBCERTS_BASE_URL": ...}; None values left out."""
    return {f"{prefix}{k.upper()}": v for k, v in values.items() if v is not None}


def key_env(prefix: str, server, **more) -> dict[str, str]:
    """The server's base URL and bootstrap key pair as environment variables."""
    return env_vars(
        prefix, base_url=server.root, public_api_key=server.public_key, private_api_key=server.private_key, **more
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_path(home: pathlib.Path) -> pathlib.Path:
    return home / ".config" / "dbcerts" / "config.toml"


def read_config(home: pathlib.Path) -> dict:
    return tomllib.loads(config_path(home).read_text())


def mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------ reading the CLI's output


def error_line(p: subprocess.CompletedProcess, exit_code: int, error_code: str | None = None) -> str:
    """Checks the exit code and that stderr is exactly one `Error: ` line; with `error_code`,
    that the line shows the Atlas error code and detail."""
    assert p.returncode == exit_code, f"expected exit {exit_code}\n{show(p)}"
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), f"expected one 'Error: ' line\n{show(p)}"
    if error_code is not None:
        assert f'Error code: "{error_code}"' in lines[0], show(p)
        assert "Detail:" in lines[0], show(p)
    return lines[0]


def table(out: str) -> tuple[str, list[str]]:
    """(the header, whitespace-normalized; the data rows) of a table printed by the CLI."""
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, "the CLI printed no table"
    return " ".join(lines[0].split()), lines[1:]


def row_of(rows: list[str], first: str) -> str:
    found = [r for r in rows if r.split()[0] == first]
    assert len(found) == 1, f"expected one row starting with {first!r}:\n" + "\n".join(rows)
    return found[0]


def ids(page: dict, key: str = "id") -> list:
    assert set(page) == PAGE_KEYS, page
    return [item[key] for item in page["results"]]


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def assert_no_key_shown(p: subprocess.CompletedProcess, key_b64_lines: list[str]) -> None:
    shown = p.stdout + p.stderr
    assert "PRIVATE KEY" not in shown, show(p)
    assert not [line for line in key_b64_lines if line in shown], "key material was printed"


def check_pem_file(path: pathlib.Path, user: str, ca: x509.Certificate | None = None):
    """A cert+key file as the CLI writes it: mode 0600, the server's PEM layout, loadable by
    Python's ssl module, subject CN=user, signed by `ca`. Returns the parsed PEM."""
    text = path.read_text()
    remember_private_key(text)
    assert mode(path) == 0o600, oct(mode(path))
    pem = split_pem(text)
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(str(path))
    assert [a.value for a in pem.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [user]
    if ca is not None:
        assert pem.cert.issuer == ca.subject
        pem.cert.verify_directly_issued_by(ca)  # the CA's public key verifies the signature
    return pem


# ------------------------------------------------------------------ the API, for checking


def api(server, method: str, path: str, status: int = 200, **kw):
    r = server.call(method, path, **kw)
    assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def api_error_code(server, method: str, path: str, **kw) -> str:
    """The Atlas errorCode the server itself answers to a request that must fail."""
    r = server.call(method, path, **kw)
    assert r.status_code >= 400, f"{method} {path} was expected to fail: {r.text}"
    return r.json()["errorCode"]


def user_path(gid: str, db: str, user: str) -> str:
    return f"/groups/{gid}/databaseUsers/{db}/{quote(user, safe='')}"


def certs_path(gid: str, user: str) -> str:
    return f"/groups/{gid}/databaseUsers/{quote(user, safe='')}/certs"


def api_certs(server, gid: str, user: str) -> list[dict]:
    return api(server, "GET", f"{certs_path(gid, user)}?itemsPerPage=500")["results"]


def api_serials(server, gid: str, user: str) -> list[int]:
    return [c["_id"] for c in api_certs(server, gid, user)]


def roles_of(user: dict) -> set[tuple]:
    return {(r["roleName"], r["databaseName"], r.get("collectionName")) for r in user["roles"]}


def project_ca(server, gid: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(server.export_ca(gid).encode())


def user_security(server, gid: str) -> dict:
    return api(server, "GET", f"/groups/{gid}/userSecurity")


def token_requests(server) -> float:
    """How many token requests the server answered 200."""
    return answered(server, "POST /api/oauth/token", "200")


def answered(server, operation: str, status: str) -> float:
    """How many `operation` requests the server answered with `status`: the sum of the
    matching dbcerts_http_requests_total series (any label order; absent counts as 0)."""
    text = requests.get(server.metrics_url, timeout=30).text
    wanted = {"operation": operation, "status": status}
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^dbcerts_http_requests_total\{(.*)\}\s+(\S+)$", line)
        if m and wanted.items() <= dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m[1])).items():
            total += float(m[2])
    return total


# ------------------------------------------------------------------ 1. config


def test_config_init_writes_a_private_profile_file(server, tmp_path):
    home, gid = tmp_path / "home", server.create_project()
    p = run(init_args(server, gid=gid), home=home)
    assert p.returncode == 0, show(p)
    path = config_path(home)
    assert f'Profile "default" saved to {path}' in p.stdout, show(p)
    assert mode(path) == 0o600, oct(mode(path))
    assert mode(path.parent) == 0o700, oct(mode(path.parent))

    cfg = read_config(home)
    assert set(cfg) == {"default"}
    expected = {
        "base_url": server.root,
        "public_api_key": server.public_key,
        "private_api_key": server.private_key,
        "org_id": server.org_id,
        "project_id": gid,
    }
    assert {k: cfg["default"].get(k) for k in expected} == expected
    assert not {"client_id", "client_secret"} & set(cfg["default"])
    # The saved profile is all the next command needs.
    assert Cli(server, home).json_out("projects", "describe", gid)["id"] == gid


def test_config_profiles_list_describe_set_delete(cli):
    s = cli.server
    other_gid = s.create_project()
    login(s, cli.home, "--output", "json", "-P", "other", gid=other_gid)
    cfg = read_config(cli.home)
    assert set(cfg) == {"default", "other"}
    assert cfg["default"]["project_id"] == cli.gid  # the first profile is kept
    assert (cfg["other"]["project_id"], cfg["other"]["output"]) == (other_gid, "json")
    assert mode(config_path(cli.home)) == 0o600

    assert sorted(cli.ok("config", "list").split()) == ["default", "other"]
    assert sorted(cli.json_out("config", "list")) == ["default", "other"]
    for args in (["config", "describe"], ["config", "describe", "other"]):
        p = cli.expect(0, *args)
        assert "********" in p.stdout, show(p)
        assert s.public_key in p.stdout, show(p)
        assert s.private_key not in p.stdout + p.stderr

    # A profile's output and project are its defaults; -P or DBCERTS_PROFILE picks it.
    header, _ = table(cli.ok("projects", "describe", cli.gid))
    assert header == PROJECTS_HEADER
    assert json.loads(cli.ok("projects", "describe", other_gid, "-P", "other"))["id"] == other_gid
    page = json.loads(cli.ok("dbusers", "list", env_extra={"DBCERTS_PROFILE": "other"}))
    assert set(page) == PAGE_KEYS and page["totalCount"] == 0

    third = s.create_project()
    cli.ok("config", "set", "project_id", third, "-P", "other")
    cfg = read_config(cli.home)
    assert cfg["other"]["project_id"] == third and cfg["default"]["project_id"] == cli.gid
    cli.expect(EXIT_USAGE, "config", "set", "no_such_property", "x")
    assert "no_such_property" not in read_config(cli.home)["default"]

    cli.expect(EXIT_USAGE, "config", "delete", "other")  # no --force, no terminal
    assert set(read_config(cli.home)) == {"default", "other"}
    cli.ok("config", "delete", "other", "--force")
    assert set(read_config(cli.home)) == {"default"}
    assert cli.ok("config", "list").split() == ["default"]


def test_config_init_needs_a_credential_pair_without_a_terminal(server, tmp_path):
    home = tmp_path / "home"
    base = ["config", "init", "--baseUrl", server.root, "--orgId", server.org_id]
    for creds in ([], ["--publicApiKey", server.public_key], ["--clientId", "mdb_sa_id_" + "0" * 24]):
        p = run([*base, *creds], home=home)
        assert p.returncode == EXIT_USAGE, show(p)
    assert not config_path(home).exists()
    # Without a terminal the base URL need not be given: it defaults to the local server.
    p = run(["config", "init", "--publicApiKey", server.public_key, "--privateApiKey", server.private_key], home=home)
    assert p.returncode == 0, show(p)
    assert read_config(home)["default"].get("base_url", DEFAULT_BASE_URL) == DEFAULT_BASE_URL


# ------------------------------------------------------------------ 2. the environment


def test_atlas_environment_alone_is_enough(server, tmp_path):
    gid, user = server.create_project(), unique_user("env")
    server.create_user(gid, user)
    home = tmp_path / "home"
    env = key_env("MONGODB_ATLAS_", server, project_id=gid, org_id=server.org_id)
    cli = Cli(server, home)
    assert gid in ids(cli.json_out("projects", "list", "--limit", "500", env_extra=env))
    assert ids(cli.json_out("dbusers", "list", env_extra=env), "username") == [user]
    keys = ids(cli.json_out("orgs", "apiKeys", "list", env_extra=env), "publicKey")
    assert server.public_key in keys  # the org id came from MONGODB_ATLAS_ORG_ID
    assert not config_path(home).exists()


def test_dbcerts_environment_alone_is_enough_and_sets_the_output(server, tmp_path):
    gid = server.create_project()
    cli = Cli(server, tmp_path / "home")
    env = key_env("DBCERTS_", server, project_id=gid, org_id=server.org_id, output="json")
    assert json.loads(cli.ok("projects", "describe", gid, env_extra=env))["id"] == gid
    page = json.loads(cli.ok("dbusers", "list", env_extra=env))
    assert set(page) == PAGE_KEYS and page["totalCount"] == 0
    header, _ = table(cli.ok("projects", "describe", gid, "-o", "table", env_extra=env))  # the flag wins
    assert header == PROJECTS_HEADER


def test_environment_beats_the_profile_and_flags_beat_both(server, tmp_path):
    gid, other = server.create_project(), server.create_project()
    user, other_user = unique_user("envp"), unique_user("envo")
    server.create_user(gid, user)
    server.create_user(other, other_user)
    dead = f"http://127.0.0.1:{free_port()}"
    cli = login(server, tmp_path / "home", gid=gid, base_url=dead, public="abcdefgh", private=str(uuid.uuid4()))
    error_line(cli.run("dbusers", "list"), EXIT_TRANSPORT)  # the profile alone reaches nothing

    atlas = key_env("MONGODB_ATLAS_", server)
    assert ids(cli.json_out("dbusers", "list", env_extra=atlas), "username") == [user]
    # MONGODB_ATLAS_PROJECT_ID beats the profile's project; --projectId beats the environment.
    env = {**atlas, "MONGODB_ATLAS_PROJECT_ID": other}
    assert ids(cli.json_out("dbusers", "list", env_extra=env), "username") == [other_user]
    assert ids(cli.json_out("dbusers", "list", "--projectId", gid, env_extra=env), "username") == [user]
    # DBCERTS_* beats MONGODB_ATLAS_*.
    wrong_atlas = env_vars(
        "MONGODB_ATLAS_", base_url=dead, public_api_key="zyxwvuts", private_api_key=str(uuid.uuid4()), project_id=other
    )
    right = key_env("DBCERTS_", server, project_id=gid)
    assert ids(cli.json_out("dbusers", "list", env_extra={**wrong_atlas, **right}), "username") == [user]


def test_half_credential_pairs_and_no_credentials(cli, tmp_path):
    s = cli.server
    halves = [
        {"MONGODB_ATLAS_PUBLIC_API_KEY": s.public_key},
        {"DBCERTS_PRIVATE_API_KEY": s.private_key},
        {"DBCERTS_CLIENT_ID": "mdb_sa_id_" + "0" * 24},
        {"MONGODB_ATLAS_CLIENT_SECRET": "mdb_sa_sk_" + "A" * 43},
    ]
    for half in halves:
        # A half pair is refused even though the profile holds a complete one.
        error_line(cli.run("dbusers", "list", env_extra={"MONGODB_ATLAS_BASE_URL": s.root, **half}), EXIT_USAGE)
    bare = Cli(s, tmp_path / "bare")
    error_line(bare.run("projects", "list", env_extra={"MONGODB_ATLAS_BASE_URL": s.root}), EXIT_AUTH)


# ------------------------------------------------------------------ 3. service accounts and the token cache


def test_service_account_profile_caches_its_token_on_disk(server, tmp_path):
    account = create_service_account(server)
    client_id, secret = account["clientId"], account["secrets"][0]["secret"]
    gid, user = server.create_project(), unique_user("sa")
    server.create_user(gid, user)
    home = tmp_path / "home"
    p = run(
        ["config", "init", "--baseUrl", server.root, "--clientId", client_id, "--clientSecret", secret,
         "--orgId", server.org_id, "--projectId", gid],
        home=home,
    )  # fmt: skip
    assert p.returncode == 0, show(p)
    profile = read_config(home)["default"]
    assert (profile["client_id"], profile["client_secret"]) == (client_id, secret)
    assert not {"public_api_key", "private_api_key"} & set(profile)
    cli = Cli(server, home, gid)
    described = cli.expect(0, "config", "describe")
    assert secret not in described.stdout + described.stderr and "********" in described.stdout

    before = token_requests(server)
    assert gid in ids(cli.json_out("projects", "list", "--limit", "500"))
    assert ids(cli.json_out("dbusers", "list"), "username") == [user]
    assert token_requests(server) - before == 1  # the second command used the cached token

    tokens = list((home / ".cache" / "dbcerts" / "tokens").glob("*.json"))
    assert len(tokens) == 1, tokens
    assert mode(tokens[0]) == 0o600, oct(mode(tokens[0]))
    cached = tokens[0].read_text()
    assert secret not in cached
    for jwt in re.findall(r"[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}", cached):
        remember_secret(jwt)  # the access token must not reach the server log either

    # Without the cache the next command asks for a token again.
    tokens[0].unlink()
    assert ids(cli.json_out("dbusers", "list"), "username") == [user]
    assert token_requests(server) - before == 2


# ------------------------------------------------------------------ 4. projects


def test_projects_create_describe_list(cli):
    s = cli.server
    name = f"cli-{uuid.uuid4().hex[:10]}"
    out = cli.ok("projects", "create", name)
    m = re.fullmatch(rf"Project '{re.escape(name)}' created: ([0-9a-f]{{24}})", out.strip())
    assert m, out
    pid = m[1]
    got = api(s, "GET", f"/groups/{pid}")
    assert (got["name"], got["orgId"]) == (name, s.org_id)

    name2 = f"cli-{uuid.uuid4().hex[:10]}"
    created = cli.json_out("projects", "create", name2)
    assert (created["name"], created["orgId"]) == (name2, s.org_id)
    assert api(s, "GET", f"/groups/{created['id']}")["name"] == name2

    header, rows = table(cli.ok("projects", "describe", pid))
    assert header == PROJECTS_HEADER
    assert name in row_of(rows, pid) and s.org_id in row_of(rows, pid)
    described = cli.json_out("projects", "describe", pid)
    assert {k: described[k] for k in ("id", "name", "orgId", "created")} == {
        k: got[k] for k in ("id", "name", "orgId", "created")
    }

    header, rows = table(cli.ok("projects", "list", "--limit", "500"))
    assert header == PROJECTS_HEADER
    assert name in row_of(rows, pid) and name2 in row_of(rows, created["id"])
    page = cli.json_out("projects", "list", "--limit", "500")
    expected = api(s, "GET", "/groups?itemsPerPage=500")
    assert ids(page) == ids(expected) and pid in ids(page)
    assert page["totalCount"] == expected["totalCount"]


def test_projects_list_pages_as_the_api_does(cli):
    s = cli.server
    for _ in range(3):  # at least four projects, whatever ran before
        s.create_project()
    for limit, page_num in ((1, 2), (2, 1), (2, 2)):
        page = cli.json_out("projects", "list", "--limit", limit, "--page", page_num)
        expected = api(s, "GET", f"/groups?itemsPerPage={limit}&pageNum={page_num}")
        assert ids(page) == ids(expected) and len(ids(page)) == limit
        assert page["totalCount"] == expected["totalCount"]


def test_projects_delete_needs_force_without_a_terminal(cli):
    s = cli.server
    pid = s.create_project()
    error_line(cli.run("projects", "delete", pid), EXIT_USAGE)
    api(s, "GET", f"/groups/{pid}")  # still there
    assert f"Project '{pid}' deleted" in cli.ok("projects", "delete", pid, "--force")
    code = api_error_code(s, "GET", f"/groups/{pid}")
    error_line(cli.run("projects", "describe", pid), EXIT_NOT_FOUND, code)


# ------------------------------------------------------------------ 5. database users


def test_dbusers_create_list_describe(cli):
    s, gid = cli.server, cli.gid
    alice, bob, dave = unique_user("alice"), unique_user("bob"), unique_user("dave")
    carol = f"CN={unique_user('carol')},OU=eng,O=example"

    out = cli.ok("dbusers", "create", "readAnyDatabase", "--username", alice, "--x509Type", "MANAGED",
                 "--desc", "reports robot")  # fmt: skip
    assert out.strip() == f"Database user '{alice}' created."
    got = api(s, "GET", user_path(gid, "$external", alice))
    assert (got["databaseName"], got["x509Type"], got["description"]) == ("$external", "MANAGED", "reports robot")
    assert roles_of(got) == {("readAnyDatabase", "admin", None)}

    created = cli.json_out("dbusers", "create", "--username", bob, "--x509Type", "MANAGED",
                           "--role", "readWrite@sales.orders", "--role", "read@reports")  # fmt: skip
    want = {("readWrite", "sales", "orders"), ("read", "reports", None)}
    assert created["username"] == bob and roles_of(created) == want
    assert roles_of(api(s, "GET", user_path(gid, "$external", bob))) == want

    cli.ok("dbusers", "create", "--username", carol, "--x509Type", "CUSTOMER", "--role", "read@reports")
    got = api(s, "GET", user_path(gid, "$external", carol))
    assert (got["x509Type"], got["databaseName"]) == ("CUSTOMER", "$external")

    password = remember_secret(f"pw-{uuid.uuid4().hex}")
    p = cli.expect(0, "dbusers", "create", "--username", dave, "--password", password, "--role", "readWrite@app")
    assert password not in p.stdout + p.stderr
    got = api(s, "GET", user_path(gid, "admin", dave))
    assert (got["x509Type"], got["databaseName"]) == ("NONE", "admin")
    assert roles_of(got) == {("readWrite", "app", None)}
    # A SCRAM user needs a password, and there is no terminal to ask for one.
    nopw = unique_user("nopw")
    cli.expect(EXIT_USAGE, "dbusers", "create", "--username", nopw, "--role", "read@app")
    assert s.call("GET", user_path(gid, "admin", nopw)).status_code == 404

    header, rows = table(cli.ok("dbusers", "list"))
    assert header == USERS_HEADER
    assert sorted(r.split()[0] for r in rows) == sorted([alice, bob, carol, dave])
    for user, words in (
        (alice, ["$external", "MANAGED", "readAnyDatabase@admin"]),
        (bob, ["$external", "MANAGED", "readWrite@sales.orders", "read@reports"]),
        (carol, ["$external", "CUSTOMER", "read@reports"]),
        (dave, ["admin", "NONE", "readWrite@app"]),
    ):
        assert all(w in row_of(rows, user) for w in words), (words, row_of(rows, user))
    page = cli.json_out("dbusers", "list")
    assert sorted(ids(page, "username")) == sorted(ids(api(s, "GET", f"/groups/{gid}/databaseUsers"), "username"))

    # describe without --authDB finds users on either database.
    header, rows = table(cli.ok("dbusers", "describe", alice))
    assert header == USERS_HEADER and "$external" in row_of(rows, alice)
    assert cli.json_out("dbusers", "describe", alice)["databaseName"] == "$external"
    assert cli.json_out("dbusers", "describe", carol)["x509Type"] == "CUSTOMER"
    assert cli.json_out("dbusers", "describe", dave)["databaseName"] == "admin"
    code = api_error_code(s, "GET", user_path(gid, "admin", alice))
    error_line(cli.run("dbusers", "describe", alice, "--authDB", "admin"), EXIT_NOT_FOUND, code)


def test_dbusers_update_replaces_roles_and_delete_needs_force(cli):
    s, gid = cli.server, cli.gid
    bob, dave = unique_user("bob"), unique_user("dave")
    s.create_user(gid, bob, roles=[{"databaseName": "sales", "roleName": "readWrite", "collectionName": "orders"}])
    s.create_user(gid, dave, x509_type="NONE", password=remember_secret(f"pw-{uuid.uuid4().hex}"))

    new_roles = {("read", "reports", None), ("readAnyDatabase", "admin", None)}
    out = cli.ok("dbusers", "update", bob, "--authDB", "$external",
                 "--role", "read@reports", "--role", "readAnyDatabase@admin")  # fmt: skip
    assert out.strip() == f"Database user '{bob}' updated."
    assert roles_of(api(s, "GET", user_path(gid, "$external", bob))) == new_roles
    # Without --role the roles stay.
    updated = cli.json_out("dbusers", "update", bob, "--authDB", "$external", "--desc", "now read-only")
    got = api(s, "GET", user_path(gid, "$external", bob))
    assert got["description"] == updated["description"] == "now read-only"
    assert roles_of(got) == new_roles
    cli.ok("dbusers", "update", dave, "--role", "read@app")
    assert roles_of(api(s, "GET", user_path(gid, "admin", dave))) == {("read", "app", None)}

    error_line(cli.run("dbusers", "delete", bob, "--authDB", "$external"), EXIT_USAGE)
    api(s, "GET", user_path(gid, "$external", bob))  # still there
    assert f"Database user '{bob}' deleted" in cli.ok("dbusers", "delete", bob, "--authDB", "$external", "--force")
    assert f"Database user '{dave}' deleted" in cli.ok("dbusers", "delete", dave, "--force")
    assert s.call("GET", user_path(gid, "$external", bob)).status_code == 404
    assert s.call("GET", user_path(gid, "admin", dave)).status_code == 404


# ------------------------------------------------------------------ 6. certificates


@pytest.mark.dates
def test_certs_create_writes_a_private_file_and_never_prints_the_key(cli, tmp_path):
    s, gid = cli.server, cli.gid
    user = unique_user("cert")
    s.create_user(gid, user)
    ca = project_ca(s, gid)
    path = tmp_path / "client.pem"
    args = ["dbusers", "certs", "create", "--username", user, "--out", path]

    p = cli.expect(0, *args)
    pem = check_pem_file(path, user, ca)
    said = rf"Certificate for '{user}' \(serial (\d+), expires (\d{{4}}-\d{{2}}-\d{{2}})\) written to (.+)"
    m = re.fullmatch(said, p.stdout.strip())
    assert m, show(p)
    assert int(m[1]) == pem.cert.serial_number
    assert m[2] == pem.cert.not_valid_after_utc.strftime("%Y-%m-%d")
    assert m[3] == str(path)
    assert_no_key_shown(p, pem.key_b64_lines)
    assert api_serials(s, gid, user) == [pem.cert.serial_number]

    # An existing file is not overwritten, and no certificate is issued for nothing.
    before = path.read_bytes()
    error_line(cli.run(*args), EXIT_USAGE)
    assert path.read_bytes() == before
    assert len(api_serials(s, gid, user)) == 1

    p = cli.expect(0, *args, "--force")
    replaced = check_pem_file(path, user, ca)
    assert replaced.cert.serial_number != pem.cert.serial_number
    assert_no_key_shown(p, replaced.key_b64_lines)
    assert sorted(api_serials(s, gid, user)) == sorted([pem.cert.serial_number, replaced.cert.serial_number])

    path2 = tmp_path / "short.pem"
    p = cli.expect(0, "dbusers", "certs", "create", "--username", user, "--out", path2,
                   "--monthsUntilExpiration", "1", "-o", "json")  # fmt: skip
    short = check_pem_file(path2, user, ca)
    assert_no_key_shown(p, short.key_b64_lines)
    shown = json.loads(p.stdout)
    assert {"username", "groupId", "serial", "notAfter", "subject", "path"} <= set(shown)
    assert (shown["username"], shown["groupId"], shown["subject"]) == (user, gid, f"CN={user}")
    assert str(shown["serial"]) == str(short.cert.serial_number)
    assert parse_time(shown["notAfter"]) == short.cert.not_valid_after_utc
    assert pathlib.Path(shown["path"]).resolve() == path2.resolve()
    # One calendar month from its creation (notBefore + 1 h), clamped to the month's end.
    created = short.cert.not_valid_before_utc + dt.timedelta(hours=1)
    assert short.cert.not_valid_after_utc == add_months(created, 1)
    assert len(api_serials(s, gid, user)) == 3


def test_certs_create_without_out_prints_pem_to_a_pipe_but_not_to_a_terminal(cli, tmp_path):
    s, gid = cli.server, cli.gid
    user = unique_user("pipe")
    s.create_user(gid, user)
    args = ["dbusers", "certs", "create", "--username", user]

    p = cli.expect(0, *args)
    remember_private_key(p.stdout)
    pem = split_pem(p.stdout)  # exactly the server's body: cert, then key
    saved = tmp_path / "from-stdout.pem"
    saved.write_text(p.stdout)
    saved.chmod(0o600)
    check_pem_file(saved, user, project_ca(s, gid))
    assert api_serials(s, gid, user) == [pem.cert.serial_number]

    t = run_tty(args, home=cli.home, stderr_tty=False)
    assert t.code == EXIT_USAGE, t
    assert "--out" in t.stderr, t
    assert "BEGIN" not in t.text, t
    assert api_serials(s, gid, user) == [pem.cert.serial_number]  # nothing was issued


def test_certs_list_matches_the_api(cli):
    s, gid = cli.server, cli.gid
    user = unique_user("list")
    s.create_user(gid, user)
    for months in (1, 3):
        s.create_cert(gid, user, months=months)
    listed = api_certs(s, gid, user)
    assert len(listed) == 2

    header, rows = table(cli.ok("dbusers", "certs", "list", user))
    assert header == CERTS_HEADER
    assert sorted(r.split()[0] for r in rows) == sorted(str(c["_id"]) for c in listed)
    for c in listed:
        assert f"CN={user}" in row_of(rows, str(c["_id"]))
    page = cli.json_out("dbusers", "certs", "list", user)
    assert ids(page, "_id") == [c["_id"] for c in listed]


def test_certs_create_beyond_two_years_is_the_servers_usage_error(cli, tmp_path):
    s, gid = cli.server, cli.gid
    user = unique_user("long")
    s.create_user(gid, user)
    code = api_error_code(s, "POST", certs_path(gid, user), json={"monthsUntilExpiration": 25})
    out = tmp_path / "never.pem"
    p = cli.run("dbusers", "certs", "create", "--username", user, "--monthsUntilExpiration", "25", "--out", out)
    error_line(p, EXIT_USAGE, code)
    assert not out.exists()
    assert api_serials(s, gid, user) == []


# ------------------------------------------------------------------ 7. errors and exit codes


def test_authentication_failures_exit_3(cli, tmp_path):
    s = cli.server
    wrong = str(uuid.uuid4())
    r = requests.get(s.url("/groups"), auth=HTTPDigestAuth(s.public_key, wrong), headers={"Accept": V2}, timeout=30)
    assert r.status_code == 401
    bad = login(s, tmp_path / "wrong-key", private=wrong, gid=cli.gid)
    error_line(bad.run("projects", "list"), EXIT_AUTH, r.json()["errorCode"])

    # Authenticated, but not allowed: a read-only organization key cannot create a project.
    body = api(s, "POST", f"/orgs/{s.org_id}/apiKeys", json={"desc": "read-only", "roles": ["ORG_READ_ONLY"]})
    remember_secret(body["privateKey"])
    refused = requests.post(
        s.url("/groups"),
        json={"name": f"ro-{uuid.uuid4().hex[:8]}", "orgId": s.org_id},
        auth=HTTPDigestAuth(body["publicKey"], body["privateKey"]),
        headers={"Accept": V2},
        timeout=30,
    )
    assert refused.status_code in (401, 403), refused.text
    reader = login(s, tmp_path / "read-only", public=body["publicKey"], private=body["privateKey"])
    name = f"ro-{uuid.uuid4().hex[:8]}"
    error_line(reader.run("projects", "create", name), EXIT_AUTH, refused.json()["errorCode"])
    assert name not in {g["name"] for g in api(s, "GET", "/groups?itemsPerPage=500")["results"]}

    # A service account whose secret the token endpoint refuses.
    account = create_service_account(s)
    home = tmp_path / "wrong-secret"
    p = run(["config", "init", "--baseUrl", s.root, "--clientId", account["clientId"],
             "--clientSecret", "mdb_sa_sk_" + "A" * 43, "--orgId", s.org_id], home=home)  # fmt: skip
    assert p.returncode == 0, show(p)
    error_line(Cli(s, home).run("projects", "list"), EXIT_AUTH)


def test_not_found_usage_and_transport_exit_codes(cli, tmp_path):
    s, gid = cli.server, cli.gid
    unknown = uuid.uuid4().hex[:24]
    code = api_error_code(s, "GET", f"/groups/{unknown}/databaseUsers")
    error_line(cli.run("dbusers", "list", "--projectId", unknown), EXIT_NOT_FOUND, code)

    p = cli.expect(EXIT_USAGE, "projects", "list", "--no-such-flag")
    assert "--no-such-flag" in p.stderr

    no_project = login(s, tmp_path / "no-project")
    error_line(no_project.run("dbusers", "list"), EXIT_USAGE)

    user = unique_user("twice")
    cli.ok("dbusers", "create", "readAnyDatabase", "--username", user, "--x509Type", "MANAGED")
    conflict = api_error_code(
        s, "POST", f"/groups/{gid}/databaseUsers",
        json={"databaseName": "$external", "username": user, "x509Type": "MANAGED", "groupId": gid,
              "roles": [{"databaseName": "admin", "roleName": "readAnyDatabase"}]},
    )  # fmt: skip
    p = cli.run("dbusers", "create", "readAnyDatabase", "--username", user, "--x509Type", "MANAGED")
    error_line(p, EXIT_USAGE, conflict)

    down = login(s, tmp_path / "down", gid=gid, base_url=f"http://127.0.0.1:{free_port()}")
    error_line(down.run("dbusers", "list"), EXIT_TRANSPORT)


def test_rate_limited_request_is_a_server_class_error(make_server, tmp_path):
    s = make_server(rate_limit_certs_per_minute=1)
    gid, user = s.create_project(), unique_user("busy")
    s.create_user(gid, user)
    assert s.call("GET", certs_path(gid, user)).status_code == 200  # the minute's only request
    limited = s.call("GET", certs_path(gid, user))
    assert limited.status_code == 429, limited.text
    cli = login(s, tmp_path / "home", gid=gid)
    # DBCERTS_RATE_LIMIT_WAIT=0: fail at once instead of waiting out the minute.
    p = cli.run("dbusers", "certs", "list", user, env_extra={"DBCERTS_RATE_LIMIT_WAIT": "0"})
    error_line(p, EXIT_SERVER, limited.json()["errorCode"])


def test_a_rate_limited_command_waits_as_retry_after_says(make_server, tmp_path):
    """By default a 429 is waited out (Retry-After), so long renewals survive Atlas's limits."""
    # One more certificate request every 3 s once the allowance is used up, right before the
    # command (after `config init`): the command's request is refused however slowly the
    # machine starts it, and it is accepted after one wait of Retry-After.
    s = make_server(rate_limit_certs_per_minute=20)
    gid, user = s.create_project(), unique_user("patient")
    s.create_user(gid, user)
    cli = login(s, tmp_path / "home", gid=gid)
    while s.call("GET", certs_path(gid, user)).status_code != 429:
        pass  # use up the allowance
    post = "POST /api/atlas/v2/groups/{groupId}/databaseUsers/{first}/certs"
    refused, accepted = answered(s, post, "429"), answered(s, post, "201")
    out = cli.ok("dbusers", "certs", "create", "--username", user, "--out", tmp_path / "p.pem")
    assert answered(s, post, "429") - refused == 1, "refused once, then waited as Retry-After said"
    assert answered(s, post, "201") - accepted == 1
    assert "written to" in out
    check_pem_file(tmp_path / "p.pem", user)


@pytest.mark.skipif(BACKEND != "sqlite", reason="holds the SQLite write lock from outside the server")
def test_a_database_the_server_cannot_write_is_a_server_class_error(fresh_server, tmp_path):
    """A real 503: another process holds SQLite's write lock longer than the server's busy
    timeout, so the server answers 503 UNEXPECTED_ERROR and the CLI exits 5."""
    cli = login(fresh_server, tmp_path / "home")
    blocker = sqlite3.connect(fresh_server.data_dir / "dbcerts.db", isolation_level=None, timeout=30)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        p = cli.run("projects", "create", f"p-{uuid.uuid4().hex[:8]}")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    line = error_line(p, EXIT_SERVER)
    assert "HTTP 503" in line, line
    # The lock gone, the same command works.
    cli.ok("projects", "create", f"p-{uuid.uuid4().hex[:8]}")


# ------------------------------------------------------------------ 8. customer CAs


def test_customer_certs_create_describe_disable(cli, tmp_path):
    s, gid = cli.server, cli.gid
    ca_file = make_server_tls(tmp_path).ca_path  # self-signed, CA:TRUE, keyCertSign + cRLSign
    ca_pem = ca_file.read_text()

    out = cli.ok("security", "customerCerts", "create", "--casFile", ca_file)
    assert out.strip() == f"Customer CA certificates saved for project {gid}"
    assert user_security(s, gid)["customerX509"] == {"cas": ca_pem}
    assert ca_pem.strip() in cli.ok("security", "customerCerts", "describe")
    assert cli.json_out("security", "customerCerts", "describe") == {"cas": ca_pem}

    error_line(cli.run("security", "customerCerts", "disable"), EXIT_USAGE)  # no --force, no terminal
    assert user_security(s, gid)["customerX509"] == {"cas": ca_pem}
    cli.ok("security", "customerCerts", "disable", "--force")
    assert user_security(s, gid)["customerX509"] == {}
    assert "No customer CA is set" in cli.ok("security", "customerCerts", "describe")


def test_customer_certs_garbage_file_changes_nothing(cli, tmp_path):
    s, gid = cli.server, cli.gid
    ca_file = make_server_tls(tmp_path).ca_path
    cli.ok("security", "customerCerts", "create", "--casFile", ca_file)
    before = user_security(s, gid)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    error_line(cli.run("security", "customerCerts", "create", "--casFile", garbage), EXIT_USAGE)
    assert user_security(s, gid) == before
    assert before["customerX509"] == {"cas": ca_file.read_text()}


# ------------------------------------------------------------------ 9. organization API keys, service accounts


def test_org_api_keys_and_their_access_lists(cli):
    s = cli.server
    keys_path = f"/orgs/{s.org_id}/apiKeys"
    desc = f"cli key {uuid.uuid4().hex[:8]}"
    out = cli.ok("orgs", "apiKeys", "create", "--role", "ORG_READ_ONLY", "--desc", desc)
    pub = re.search(r"^\s*Public API Key: (\S+)\s*$", out, re.M)
    priv = re.search(r"^\s*Private API Key: (\S+)\s*$", out, re.M)
    assert pub and priv, out
    pub, priv = pub[1], remember_secret(priv[1])
    # The printed key is the real one.
    r = requests.get(s.url("/groups"), auth=HTTPDigestAuth(pub, priv), headers={"Accept": V2}, timeout=30)
    assert r.status_code == 200, r.text
    [key] = [k for k in api(s, "GET", f"{keys_path}?itemsPerPage=500")["results"] if k["publicKey"] == pub]
    kid = key["id"]
    assert key["desc"] == desc and [x["roleName"] for x in key["roles"]] == ["ORG_READ_ONLY"]

    header, rows = table(cli.ok("orgs", "apiKeys", "list"))
    assert header == API_KEYS_HEADER and pub in row_of(rows, kid)
    listed = ids(cli.json_out("orgs", "apiKeys", "list"))
    assert kid in listed
    assert ids(cli.json_out("organizations", "apiKeys", "list")) == listed  # the alias
    p = cli.expect(0, "orgs", "apiKeys", "describe", kid, "-o", "json")
    assert priv not in p.stdout + p.stderr
    assert (json.loads(p.stdout)["publicKey"], json.loads(p.stdout)["desc"]) == (pub, desc)

    cli.ok("orgs", "apiKeys", "update", kid, "--desc", f"{desc} v2", "--role", "ORG_MEMBER")
    got = api(s, "GET", f"{keys_path}/{kid}")
    assert got["desc"] == f"{desc} v2" and [x["roleName"] for x in got["roles"]] == ["ORG_MEMBER"]

    second = cli.json_out("orgs", "apiKeys", "create", "--role", "ORG_MEMBER", "--desc", "second cli key")
    remember_secret(second["privateKey"])
    assert api(s, "GET", f"{keys_path}/{second['id']}")["publicKey"] == second["publicKey"]

    access = f"{keys_path}/{kid}/accessList"
    cli.ok("orgs", "apiKeys", "accessLists", "create", "--apiKey", kid, "--ip", "10.1.2.3")
    cli.ok("orgs", "apiKeys", "accessLists", "create", "--apiKey", kid, "--cidr", "10.20.0.0/16")
    blocks = {"10.1.2.3/32", "10.20.0.0/16"}
    assert set(ids(api(s, "GET", access), "cidrBlock")) == blocks
    assert set(ids(cli.json_out("orgs", "apiKeys", "accessLists", "list", kid), "cidrBlock")) == blocks
    assert "10.20.0.0/16" in cli.ok("orgs", "apiKeys", "accessLists", "list", kid)
    error_line(cli.run("orgs", "apiKeys", "accessLists", "delete", "10.1.2.3", "--apiKey", kid), EXIT_USAGE)
    assert len(ids(api(s, "GET", access), "cidrBlock")) == 2
    cli.ok("orgs", "apiKeys", "accessLists", "delete", "10.1.2.3", "--apiKey", kid, "--force")
    assert ids(api(s, "GET", access), "cidrBlock") == ["10.20.0.0/16"]
    cli.ok("orgs", "apiKeys", "accessLists", "delete", "10.20.0.0/16", "--apiKey", kid, "--force")
    assert ids(api(s, "GET", access), "cidrBlock") == []

    error_line(cli.run("orgs", "apiKeys", "delete", kid), EXIT_USAGE)
    api(s, "GET", f"{keys_path}/{kid}")  # still there
    for k in (kid, second["id"]):
        cli.ok("orgs", "apiKeys", "delete", k, "--force")
        assert s.call("GET", f"{keys_path}/{k}").status_code == 404


def test_service_accounts_and_their_secrets(cli):
    s = cli.server
    sa_path = f"/orgs/{s.org_id}/serviceAccounts"
    name = f"cli-sa-{uuid.uuid4().hex[:8]}"
    out = cli.ok("serviceAccounts", "create", "--name", name, "--desc", "made by the cli",
                 "--role", "ORG_READ_ONLY", "--secretExpiresAfterHours", "8")  # fmt: skip
    client_id = re.search(r"mdb_sa_id_[0-9a-f]{24}", out)
    secret = re.search(r"mdb_sa_sk_[A-Za-z0-9_-]{20,}", out)
    assert client_id and secret, out
    client_id, secret = client_id[0], remember_secret(secret[0])
    get_token(s, client_id, secret)  # the printed secret is the real one
    got = api(s, "GET", f"{sa_path}/{client_id}", accept=SA_V)
    assert (got["name"], got["description"], got["roles"]) == (name, "made by the cli", ["ORG_READ_ONLY"])
    [first_secret] = got["secrets"]

    header, rows = table(cli.ok("serviceAccounts", "list"))
    assert header == SERVICE_ACCOUNTS_HEADER and name in row_of(rows, client_id)
    assert client_id in ids(cli.json_out("serviceAccounts", "list"), "clientId")
    p = cli.expect(0, "serviceAccounts", "describe", client_id, "-o", "json")
    assert secret not in p.stdout + p.stderr
    assert json.loads(p.stdout)["name"] == name

    cli.ok("serviceAccounts", "update", client_id, "--name", f"{name}-2", "--desc", "renamed", "--role", "ORG_MEMBER")
    got = api(s, "GET", f"{sa_path}/{client_id}", accept=SA_V)
    assert (got["name"], got["description"], got["roles"]) == (f"{name}-2", "renamed", ["ORG_MEMBER"])

    new = cli.json_out("serviceAccounts", "secrets", "create", "--clientId", client_id,
                       "--secretExpiresAfterHours", "8")  # fmt: skip
    remember_secret(new["secret"])
    get_token(s, client_id, new["secret"])
    assert {x["id"] for x in api(s, "GET", f"{sa_path}/{client_id}", accept=SA_V)["secrets"]} == {
        first_secret["id"], new["id"]
    }
    secret_args = ["serviceAccounts", "secrets", "delete", first_secret["id"], "--clientId", client_id]
    error_line(cli.run(*secret_args), EXIT_USAGE)
    cli.ok(*secret_args, "--force")
    assert [x["id"] for x in api(s, "GET", f"{sa_path}/{client_id}", accept=SA_V)["secrets"]] == [new["id"]]

    error_line(cli.run("serviceAccounts", "delete", client_id), EXIT_USAGE)
    cli.ok("serviceAccounts", "delete", client_id, "--force")
    assert s.call("GET", f"{sa_path}/{client_id}", accept=SA_V).status_code == 404


# ------------------------------------------------------------------ 10. completion and help


@pytest.mark.parametrize(
    "shell, marker", [("bash", "complete"), ("zsh", "#compdef dbcerts"), ("fish", "complete -c dbcerts")]
)
def test_completion_scripts(tmp_path, shell, marker):
    p = run(["completion", shell], home=tmp_path / "home")
    assert p.returncode == 0, show(p)
    assert marker in p.stdout and "dbcerts" in p.stdout and "dbusers" in p.stdout, p.stdout[:500]
    if shell == "bash":
        script = tmp_path / "dbcerts.bash"
        script.write_text(p.stdout)
        check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stderr
    assert run(["completion", "no-such-shell"], home=tmp_path / "home").returncode == EXIT_USAGE


def subcommands(help_text: str) -> list[str]:
    """The command names in a clap help's `Commands:` section (without `help`)."""
    names, inside = [], False
    for line in help_text.splitlines():
        if not inside:
            inside = line.strip() in ("Commands:", "Subcommands:")
            continue
        if not line.strip():
            break
        m = re.match(r"^  ([A-Za-z][\w-]*)", line)  # names at two spaces; wrapped text is deeper
        if m and m[1] != "help":
            names.append(m[1])
    return names


def test_every_client_command_help_shows_examples(tmp_path):
    home = tmp_path / "home"
    top = run(["--help"], home=home)
    assert top.returncode == 0, show(top)
    listed = subcommands(top.stdout)
    assert set(CLIENT_NOUNS) <= set(listed), top.stdout
    [org] = [n for n in listed if n in ORG_NOUNS]

    visited, without = set(), []
    todo = [[noun] for noun in (*CLIENT_NOUNS, org)]
    while todo:
        path = todo.pop()
        p = run([*path, "--help"], home=home)
        assert p.returncode == 0, f"{' '.join(path)} --help\n{show(p)}"
        visited.add(tuple(path))
        if "Example" not in p.stdout:
            without.append(" ".join(path))
        todo += [[*path, sub] for sub in subcommands(p.stdout)]
    assert not without, f"--help without an Example section: {without}"
    required = {
        ("config", "init"), ("config", "set"), ("projects", "list"), ("projects", "delete"),
        ("dbusers", "create"), ("dbusers", "certs", "create"), ("dbusers", "certs", "renew"),
        ("dbusers", "certs", "expiring"), ("security", "customerCerts", "create"),
        (org, "apiKeys", "accessLists", "delete"), ("serviceAccounts", "secrets", "create"),
        ("mongod-config",), ("completion",),
    }  # fmt: skip
    assert required <= visited, sorted(required - visited)


# ------------------------------------------------------------------ 11. chores: expiring and renew


def assert_no_progress_bar(p: subprocess.CompletedProcess) -> None:
    for stream in (p.stdout, p.stderr):
        assert "\r" not in stream and "\x1b[" not in stream, f"terminal control characters on a pipe:\n{show(p)}"


@pytest.mark.dates
def test_expiring_and_renew_chores(make_server, tmp_path):
    s = make_server()
    gid, other = s.create_project(), s.create_project()
    soon = [unique_user(f"soon{i:02d}") for i in range(20)]
    later = [unique_user(f"later{i}") for i in range(3)]
    other_user = unique_user("elsewhere")
    for user in soon + later:
        s.create_user(gid, user)
    s.create_user(gid, f"CN={unique_user('cust')},OU=eng,O=example", x509_type="CUSTOMER")
    s.create_user(other, other_user)
    # The later-created half first, then (a second later) the first half: listing users in
    # creation order is not soonest-first.
    for user in soon[10:]:
        s.create_cert(gid, user, months=1)
    time.sleep(1.1)
    for user in soon[:10]:
        s.create_cert(gid, user, months=1)
    for user in later:
        s.create_cert(gid, user, months=24)
    s.create_cert(other, other_user, months=1)

    def expected(group: str, users: list[str]) -> dict[tuple, dt.datetime]:
        out = {}
        for user in users:
            [c] = api_certs(s, group, user)
            out[(group, user, str(c["_id"]))] = parse_time(c["notAfter"])
        return out

    mine, theirs = expected(gid, soon), expected(other, [other_user])
    names = {g: api(s, "GET", f"/groups/{g}")["name"] for g in (gid, other)}
    cli = login(s, tmp_path / "home")  # no default project: every project the key sees

    def expiring(*args) -> dict[tuple, dt.datetime]:
        rows = cli.json_out("dbusers", "certs", "expiring", *args)
        assert isinstance(rows, list), rows
        times = [parse_time(r["notAfter"]) for r in rows]
        assert times == sorted(times), "not soonest first"
        for r in rows:
            assert r["subject"] == f"CN={r['username']}" and r["projectName"] == names[r["groupId"]]
        got = {(r["groupId"], r["username"], str(r["serial"])): parse_time(r["notAfter"]) for r in rows}
        assert len(got) == len(rows)
        return got

    assert expiring("--within", "45d") == {**mine, **theirs}
    assert expiring("--within", "6w") == {**mine, **theirs}
    assert expiring("--within", "45d", "--projectId", gid) == mine
    assert expiring("--within", "45d", "--projectId", other) == theirs
    assert expiring("--within", "1h") == {}
    header, rows = table(cli.ok("dbusers", "certs", "expiring", "--within", "45d", "--projectId", gid))
    assert header == EXPIRING_HEADER and len(rows) == 20
    for _, user, serial in mine:
        assert any(user in r and serial in r for r in rows), (user, serial, rows)
    header, rows = table(cli.ok("dbusers", "certs", "expiring", "--within", "1h"))
    assert header == EXPIRING_HEADER and rows == []

    # Renew the project's 20 under a terminal: the progress bar shows, then the summary.
    out_dir = tmp_path / "renewed"
    renew = ["dbusers", "certs", "renew", "--expiring-within", "45d", "--out-dir", out_dir, "--projectId", gid]
    t = run_tty(renew, home=cli.home)
    assert t.code == 0, t.text
    assert "Renewed 20 of 20 certificates" in t.text, t.text
    assert "/20" in t.text and "eta" in t.text.lower() and "renewing" in t.text.lower(), t.text
    assert mode(out_dir) == 0o700, oct(mode(out_dir))
    assert sorted(f.name for f in out_dir.iterdir()) == sorted(f"{u}.pem" for u in soon)
    ca = project_ca(s, gid)
    for user in soon:
        pem = check_pem_file(out_dir / f"{user}.pem", user, ca)
        serials = api_serials(s, gid, user)
        assert len(serials) == 2 and pem.cert.serial_number in serials
    for user in later:
        assert len(api_serials(s, gid, user)) == 1
    assert len(api_serials(s, other, other_user)) == 1

    # Right after, nothing is due; nothing is written.
    files = {f.name: f.read_bytes() for f in out_dir.iterdir()}
    p = cli.expect(0, *renew)
    assert "Renewed 0 of 0 certificates" in p.stdout + p.stderr, show(p)
    assert {f.name: f.read_bytes() for f in out_dir.iterdir()} == files

    # Across all projects: only the other project's user is due, written under its project id.
    all_dir = tmp_path / "all"
    p = cli.expect(0, "dbusers", "certs", "renew", "--expiring-within", "45d", "--out-dir", all_dir, "-o", "json")
    assert_no_progress_bar(p)
    result = json.loads(p.stdout)
    assert result["failed"] == []
    [renewed] = result["renewed"]
    target = all_dir / other / f"{other_user}.pem"
    assert (renewed["groupId"], renewed["username"]) == (other, other_user)
    assert pathlib.Path(renewed["path"]).resolve() == target.resolve()
    assert [f for f in all_dir.rglob("*") if f.is_file()] == [target]
    pem = check_pem_file(target, other_user, project_ca(s, other))
    assert str(renewed["serial"]) == str(pem.cert.serial_number)
    assert parse_time(renewed["notAfter"]) == pem.cert.not_valid_after_utc
    assert len(api_serials(s, other, other_user)) == 2


@pytest.mark.dates
def test_renew_carries_on_past_a_user_whose_file_exists(make_server, tmp_path):
    s = make_server()
    gid = s.create_project()
    users = [unique_user(f"due{i}") for i in range(3)]
    for user in users:
        s.create_user(gid, user)
        s.create_cert(gid, user, months=1)
    cli = login(s, tmp_path / "home", gid=gid)
    out_dir = tmp_path / "out"
    out_dir.mkdir(mode=0o700)
    blocked = out_dir / f"{users[1]}.pem"
    blocked.write_text("keep me\n")
    renew = ["dbusers", "certs", "renew", "--expiring-within", "45d", "--out-dir", out_dir, "--projectId", gid]

    p = cli.expect(EXIT_LOCAL, *renew)
    both = p.stdout + p.stderr
    assert "Renewed 2 of 3 certificates" in both, show(p)
    failed = [line for line in both.splitlines() if line.strip().startswith("FAILED")]
    assert len(failed) == 1 and f"{gid}/{users[1]}" in failed[0], show(p)
    assert_no_progress_bar(p)
    assert blocked.read_text() == "keep me\n"
    assert len(api_serials(s, gid, users[1])) == 1  # no certificate issued for the blocked user
    for user in (users[0], users[2]):
        assert len(api_serials(s, gid, user)) == 2
        check_pem_file(out_dir / f"{user}.pem", user)

    # Still due, still blocked: the JSON report says so.
    p = cli.expect(EXIT_LOCAL, *renew, "-o", "json")
    result = json.loads(p.stdout)
    assert result["renewed"] == []
    assert [(f["groupId"], f["username"]) for f in result["failed"]] == [(gid, users[1])]
    assert result["failed"][0]["error"]
    assert blocked.read_text() == "keep me\n"

    p = cli.expect(0, *renew, "--force")
    assert "Renewed 1 of 1 certificates" in p.stdout + p.stderr, show(p)
    check_pem_file(blocked, users[1], project_ca(s, gid))
    assert len(api_serials(s, gid, users[1])) == 2


def test_renew_warns_when_the_window_reaches_the_new_certificates_life(make_server, tmp_path):
    """A window at least as long as the new certificates' life cannot settle: `renew` says so
    before it starts, and the next run finds the same user due again and stops at its file.
    Longer certificates settle the same window."""
    s = make_server()
    gid = s.create_project()
    user = unique_user("churn")
    s.create_user(gid, user)
    s.create_cert(gid, user, months=1)
    cli = login(s, tmp_path / "home", gid=gid)
    out_dir = tmp_path / "out"
    pem = out_dir / f"{user}.pem"
    # Certificates of 3 months (the default) end 89 to 92 days on: inside 120 days, on any date.
    renew = ["dbusers", "certs", "renew", "--expiring-within", "120d", "--out-dir", out_dir, "--projectId", gid]

    p = cli.expect(0, *renew)
    assert "Renewed 1 of 1 certificates" in p.stdout, show(p)
    assert "Warning:" in p.stderr and "(3 months," in p.stderr and "--force" in p.stderr, show(p)
    check_pem_file(pem, user, project_ca(s, gid))
    written = pem.read_bytes()

    p = cli.expect(EXIT_LOCAL, *renew)
    assert "Warning:" in p.stderr, show(p)
    assert "Renewed 0 of 1 certificates" in p.stdout and "exists; pass --force" in p.stdout, show(p)
    assert pem.read_bytes() == written
    assert len(api_serials(s, gid, user)) == 2, "nothing issued for a file that cannot be written"

    # 6-month certificates (181 to 184 days) outlive the window: no warning, and then nothing due.
    p = cli.expect(0, *renew, "--monthsUntilExpiration", "6", "--force")
    assert "Renewed 1 of 1 certificates" in p.stdout and "Warning" not in p.stderr, show(p)
    p = cli.expect(0, *renew, "--monthsUntilExpiration", "6")
    assert "Renewed 0 of 0 certificates" in p.stdout and "Warning" not in p.stderr, show(p)
    assert len(api_serials(s, gid, user)) == 3


# ------------------------------------------------------------------ 12. mongod-config


def test_mongod_config_for_managed_users(cli, tmp_path):
    s, gid = cli.server, cli.gid
    alice, bob, dave = unique_user("ma"), unique_user("mb"), unique_user("md")
    carol = f"CN={unique_user('mc')},OU=eng,O=example"
    s.create_user(gid, alice, roles=[{"databaseName": "sales", "roleName": "readWrite"}])
    s.create_user(gid, bob, roles=[{"databaseName": "admin", "roleName": "readAnyDatabase"},
                                   {"databaseName": "reports", "roleName": "read"}])  # fmt: skip
    s.create_user(gid, carol, x509_type="CUSTOMER")
    s.create_user(gid, dave, x509_type="NONE", password=remember_secret(f"pw-{uuid.uuid4().hex}"))
    wanted = {
        alice: ['{role: "readWrite", db: "sales"}'],
        bob: ['{role: "readAnyDatabase", db: "admin"}', '{role: "read", db: "reports"}'],
    }

    def check_commands(text: str) -> None:
        creates = [line.strip() for line in text.splitlines() if "createUser" in line]
        assert len(creates) == 2, text
        for user, roles in wanted.items():
            [line] = [c for c in creates if f'createUser: "CN={user}"' in c]
            assert line.startswith(f'db.getSiblingDB("$external").runCommand({{createUser: "CN={user}"'), line
            assert all(role in line for role in roles), line
        assert carol.split(",")[0][3:] not in text and dave not in text

    out = cli.ok("mongod-config", "--projectId", gid)
    ca_pem = s.export_ca(gid)
    assert ca_pem.strip() in out
    for word in ("requireTLS", "CAFile", "MONGODB-X509"):
        assert word in out, out
    check_commands(out)

    ca_file = tmp_path / "ca.pem"
    out = cli.ok("mongod-config", "--projectId", gid, "--ca-out", ca_file)
    assert ca_file.read_text() == ca_pem
    assert "BEGIN CERTIFICATE" not in out
    assert any(str(ca_file) in line for line in out.splitlines() if "CAFile:" in line), out
    check_commands(out)
    ca_file.write_text("stale\n")
    error_line(cli.run("mongod-config", "--projectId", gid, "--ca-out", ca_file), EXIT_USAGE)
    assert ca_file.read_text() == "stale\n"
    cli.ok("mongod-config", "--projectId", gid, "--ca-out", ca_file, "--force")
    assert ca_file.read_text() == ca_pem

    shown = cli.json_out("mongod-config", "--projectId", gid)
    assert shown["groupId"] == gid and shown["caPem"] == ca_pem
    assert "requireTLS" in shown["mongodConf"] and "MONGODB-X509" in shown["mongodConf"]
    check_commands("\n".join(shown["commands"]))


# ------------------------------------------------------------------ review findings


def test_no_certificate_is_issued_for_a_file_that_cannot_be_written(cli, tmp_path):
    s, gid = cli.server, cli.gid
    user = unique_user("nodir")
    s.create_user(gid, user)
    p = cli.run("dbusers", "certs", "create", "--username", user, "--out", tmp_path / "missing" / "a.pem")
    error_line(p, EXIT_LOCAL)
    assert api_serials(s, gid, user) == [], "a certificate was issued for a file that cannot exist"


def test_a_redirected_stdout_is_made_private_before_the_key_is_written(cli, tmp_path):
    s, gid = cli.server, cli.gid
    user = unique_user("redir")
    s.create_user(gid, user)
    target = tmp_path / "redirected.pem"
    target.touch(mode=0o644)
    target.chmod(0o644)
    with open(target, "w") as out:
        p = subprocess.run([dbcerts_bin(), "dbusers", "certs", "create", "--username", user],
                           stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                           env=cli_env(cli.home), timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    remember_private_key(target.read_text())
    assert mode(target) == 0o600
    check_pem_file(target, user)


def test_environment_credentials_never_go_to_a_server_the_environment_does_not_name(server, tmp_path):
    gid = server.create_project()
    cli = login(server, tmp_path / "home", gid=gid)
    # Real-Atlas-looking keys in the shell, but no MONGODB_ATLAS_BASE_URL: the profile's own
    # credentials are used with the profile's server, and the shell's keys are left alone.
    atlas_keys = env_vars("MONGODB_ATLAS_", public_api_key="atlaskey", private_api_key=str(uuid.uuid4()))
    p = cli.expect(0, "dbusers", "list", "-o", "json", env_extra=atlas_keys)
    assert "ignoring API credentials" in p.stderr
    # With the base URL named, they are used (and, being wrong, refused by that server).
    error_line(cli.run("dbusers", "list", env_extra={**atlas_keys, "MONGODB_ATLAS_BASE_URL": server.root}), EXIT_AUTH)


def test_a_malformed_profile_file_is_reported_without_quoting_its_secrets(cli):
    secret = str(uuid.uuid4())
    path = config_path(cli.home)
    path.write_text(path.read_text() + f"\n[broken]\nprivat_api_key = \"{secret}\"\nprivate_api_key = {secret}\n")
    p = cli.run("projects", "list")
    line = error_line(p, EXIT_USAGE)
    assert str(path) in line and "line" in line, line
    assert secret not in p.stdout + p.stderr


def test_roles_and_scopes_take_comma_separated_lists_as_in_the_atlas_cli(cli):
    s, gid = cli.server, cli.gid
    user = unique_user("csv")
    cli.ok("dbusers", "create", "-u", user, "--x509Type", "MANAGED",
           "--role", "readWrite@sales,read@reports.daily")  # fmt: skip
    got = api(s, "GET", user_path(gid, "$external", user))
    assert roles_of(got) == {("readWrite", "sales", None), ("read", "reports", "daily")}


def test_mongod_config_grants_only_roles_mongodb_has(cli):
    s, gid = cli.server, cli.gid
    user = unique_user("custom")
    s.create_user(gid, user, roles=[{"databaseName": "admin", "roleName": "myCustomRole"},
                                    {"databaseName": "sales", "roleName": "read"}])  # fmt: skip
    out = cli.ok("mongod-config")
    line = next(ln for ln in out.splitlines() if f'createUser: "CN={user}"' in ln)
    assert '{role: "read", db: "sales"}' in line and "myCustomRole" not in line, line
    assert any(ln.startswith("// Note:") and "myCustomRole@admin" in ln for ln in out.splitlines()), out


@pytest.mark.dates
def test_renew_reports_managed_users_without_any_unexpired_certificate(cli, tmp_path):
    s, gid = cli.server, cli.gid
    bare = unique_user("bare")
    s.create_user(gid, bare)
    result = json.loads(cli.ok("dbusers", "certs", "renew", "--expiring-within", "30d",
                               "--out-dir", tmp_path / "out", "--projectId", gid, "-o", "json"))  # fmt: skip
    assert result["renewed"] == [] and result["failed"] == []
    assert {"groupId": gid, "username": bare} in result["withoutCertificate"]
    table_out = cli.ok("dbusers", "certs", "renew", "--expiring-within", "30d",
                       "--out-dir", tmp_path / "out", "--projectId", gid)  # fmt: skip
    assert "hold no unexpired certificate" in table_out and f"{gid}/{bare}" in table_out
    assert api_serials(s, gid, bare) == []
