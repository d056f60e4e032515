"""The README's walk-throughs, run as written, against a real server.

README.md's blocks are read from the file (not copied here), so the test fails if the README
drifts from what dbcerts does:

- "With the command line": its five commands. `dbcerts config init` is answered through a
  pseudo-terminal, as a person at a terminal would answer it (the private key prompt does not
  echo); the only substitution is the project ID the second command prints, which the third
  command's placeholder asks for. The certificate on disk must load with Python's ssl module.
- "With curl": the block, verbatim, through bash, after the command-line walk on the same
  server and in a fresh directory. It finds the server and its data directory through
  `DBCERTS_BASE_URL` and `DBCERTS_DATA_DIR`, as the README says; nothing in it is substituted.
- "Access control": its block, verbatim, after the curl walk, with `GROUP` set to the project
  the curl walk printed, as the README says.
- "Using the certificates with your own mongod": the shell block, verbatim, in the command-line
  walk's directory (with `DBCERTS_DATA_DIR`, and on PostgreSQL `DBCERTS_DATABASE_URL`, naming
  the server's store, as the block's comment says). No mongod is available (Debian does not
  package MongoDB), so mongod, the `createUser` command and the `mongosh` connection are not
  run. What they rely on is checked instead: the user name in the `createUser` block is the
  certificate's subject, and the TLS handshake that `mongod.conf` and the `mongosh` flags set up
  is made with Python's ssl (OpenSSL, as in mongod): a server requiring a client certificate
  signed by the exported CA file, with a server certificate from `server-ca.pem`, and the client
  presenting `alice.pem`.

Each walk ends with a certificate that `openssl verify` accepts against the project CA, with
subject CN=alice.
"""

from __future__ import annotations

import os
import pathlib
import pty
import json
import re
import select
import shlex
import shutil
import ssl
import stat
import subprocess
import termios
import time

import requests
from cryptography import x509
from requests.auth import HTTPDigestAuth

from _certs_util import ServerTls, make_server_tls, mutual_tls
from conftest import ROOT, SA_V, V2, dbcerts_bin, remember_private_key, remember_secret


def readme_block(marker: str) -> str:
    """The shell block after the README's `<!-- marker` comment."""
    text = (ROOT / "README.md").read_text()
    assert text.count(f"<!-- {marker}") == 1, marker
    return text.split(f"<!-- {marker}", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]


def readme_section_blocks(title: str, language: str) -> list[str]:
    """The `language` blocks of the README section `## title`."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [b.split("```", 1)[0] for b in section.split(f"```{language}\n")[1:]]


def readme_first_five() -> list[str]:
    block = readme_block("first-five")
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 5, commands
    assert all(c.startswith("dbcerts ") for c in commands), commands
    return commands


def isolated_env(home: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_ATLAS_", "DBCERTS_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"))
    return env


def on_path(env: dict[str, str]) -> dict[str, str]:
    """`env` with the dbcerts under test first on PATH, as the README's `export PATH` puts it."""
    binary = pathlib.Path(dbcerts_bin()).resolve()
    assert binary.name == "dbcerts", binary
    return {**env, "PATH": f"{binary.parent}{os.pathsep}{env.get('PATH', os.defpath)}"}


def argv(command: str) -> list[str]:
    words = shlex.split(command)
    assert words[0] == "dbcerts"
    return [dbcerts_bin(), *words[1:]]


def wait_for_no_echo(fd: int, timeout: float = 30.0) -> None:
    """Waits until the program has turned echo off, i.e. is reading a secret. A secret typed
    earlier would be echoed, and then discarded when echo goes off (TCSAFLUSH), as at any
    password prompt."""
    deadline = time.monotonic() + timeout
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        assert time.monotonic() < deadline, "the secret prompt never turned echo off"
        time.sleep(0.01)


def converse(args: list[str], env: dict[str, str], cwd: pathlib.Path, script: list[tuple[str, str, bool]]) -> tuple[int, str]:
    """Runs `args` on a new pseudo-terminal; for each (prompt, answer, secret) waits for the
    prompt text (and, for a secret, for echo to go off), then types the answer and Enter.
    Returns the exit status and everything shown."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.chdir(cwd)
        os.execve(args[0], args, env)
    shown = b""

    def read_until(pattern: str, timeout: float = 30.0) -> None:
        nonlocal shown
        deadline = time.monotonic() + timeout
        while pattern.encode() not in shown:
            left = deadline - time.monotonic()
            assert left > 0, f"no prompt {pattern!r}; screen so far: {shown.decode(errors='replace')!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"exited before prompt {pattern!r}: {shown.decode(errors='replace')!r}"
                shown += chunk

    for prompt, answer, secret in script:
        read_until(prompt)
        shown = shown.replace(prompt.encode(), b"<asked>", 1)
        if secret:
            wait_for_no_echo(fd)
        os.write(fd, answer.encode() + b"\r")
    # Drain until the child exits.
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def cli_walk(server, home: pathlib.Path, work: pathlib.Path) -> str:
    """Runs the five commands in `work` with the profile in `home`; returns the project ID."""
    commands = readme_first_five()
    home.mkdir()
    work.mkdir()
    env = isolated_env(home)

    # 1. config init, answered at a terminal.
    code, screen = converse(
        argv(commands[0]),
        env,
        work,
        [
            ("Base URL", server.root, False),
            ("Authenticate with", "", False),  # Enter: the API key pair, the default
            ("Public API key", server.public_key, False),
            ("Private API key", server.private_key, True),
            ("Default organization ID", server.org_id, False),
            ("Default project ID", "", False),
        ],
    )
    assert code == 0, screen
    assert server.private_key not in screen, "the private key was echoed"
    config = home / "config" / "dbcerts" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    def run(command: str) -> str:
        out = subprocess.run(argv(command), env=env, cwd=work, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"{command}: {out.returncode}\n{out.stdout}\n{out.stderr}"
        return out.stdout

    # 2. the project; 3. its ID as the default (the one placeholder in the README).
    created = run(commands[1])
    group_id = re.search(r"\b([0-9a-f]{24})\b", created).group(1)
    assert re.search(r"<[^>]+>", commands[2]), commands[2]
    run(re.sub(r"<[^>]+>", group_id, commands[2]))
    # 4. the MANAGED user; 5. the certificate on disk.
    run(commands[3])
    run(commands[4])
    return group_id


def check_certificate(server, group_id: str, pem_path: pathlib.Path, ca_path: pathlib.Path) -> x509.Certificate:
    """The walk's end: a 0600 PEM that loads as a client certificate and key, that `openssl
    verify` accepts against the project CA, with subject CN=alice, listed by the server."""
    assert stat.S_IMODE(pem_path.stat().st_mode) == 0o600, oct(pem_path.stat().st_mode)
    pem = pem_path.read_text()
    remember_private_key(pem)
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(pem_path)
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_path), str(pem_path)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0 and verified.stdout.strip() == f"{pem_path}: OK", verified
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.rfc4514_string() == "CN=alice"
    listed = server.call("GET", f"/groups/{group_id}/databaseUsers/alice/certs").json()["results"]
    assert [c["_id"] for c in listed] == [cert.serial_number]
    return cert


def project_ca_file(server, group_id: str, path: pathlib.Path) -> pathlib.Path:
    r = server.session.get(f"{server.root}/api/dbcerts/v1/groups/{group_id}/ca", timeout=60)
    assert r.status_code == 200, r.text
    path.write_text(r.text)
    return path


def run_script(script: str, cwd: pathlib.Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Runs README shell text with bash, as pasted into a shell. `-eu -o pipefail` stops at the
    first failing command or unset name (the curl blocks set them themselves)."""
    out = subprocess.run(
        ["bash", "-eu", "-o", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"exit {out.returncode}\n--- stdout:\n{out.stdout}\n--- stderr:\n{out.stderr}"
    return out


def curl_env(server, home: pathlib.Path) -> dict[str, str]:
    """What the curl block reads: the server's address and data directory."""
    return {**isolated_env(home), "DBCERTS_BASE_URL": server.root, "DBCERTS_DATA_DIR": str(server.data_dir)}


def test_the_readme_first_five_commands_work_as_written(make_server, tmp_path):
    server = make_server()
    group_id = cli_walk(server, tmp_path / "home", tmp_path / "work")
    check_certificate(
        server, group_id, tmp_path / "work" / "alice.pem", project_ca_file(server, group_id, tmp_path / "ca.pem")
    )


def test_the_readme_curl_walk_after_the_cli_walk_and_then_the_mongod_section(make_server, tmp_path):
    server = make_server()
    home, work = tmp_path / "home", tmp_path / "work"
    cli_group = cli_walk(server, home, work)

    # The curl block, after the command-line walk, in a fresh directory.
    fresh = tmp_path / "curl-walk"
    fresh.mkdir()
    block = readme_block("curl-walk")
    assert block.startswith("set -euo pipefail\n"), block
    out = run_script(block, fresh, curl_env(server, home))
    curl_group = re.search(r"^project demo-curl: GROUP=([0-9a-f]{24})$", out.stdout, re.M).group(1)
    assert curl_group != cli_group
    assert server.call("GET", f"/groups/{curl_group}").json()["name"] == "demo-curl"
    assert server.call("GET", f"/groups/{cli_group}").json()["name"] == "demo"
    assert "subject=CN = alice" in out.stdout, out.stdout
    assert sorted(p.name for p in fresh.iterdir()) == ["alice.pem"]
    check_certificate(server, curl_group, fresh / "alice.pem", project_ca_file(server, curl_group, tmp_path / "curl-ca.pem"))

    # Run again, it stops at the first call (the project exists) and saves nothing.
    again = tmp_path / "curl-walk-again"
    again.mkdir()
    p = subprocess.run(["bash", "-c", block], cwd=again, env=curl_env(server, home), capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "returned error: 409" in p.stderr, p
    assert "GROUP=" not in p.stdout and list(again.iterdir()) == [], p.stdout
    # Its certificate step, for a user the project does not have: a 404, and no alice.pem.
    stanzas = block.split("\n\n")
    [save] = [t for t in stanzas if t.startswith("# a certificate")]
    empty_project = server.create_project()
    p = subprocess.run(
        ["bash", "-c", f"{stanzas[0]}\nGROUP={empty_project}\n{save}"],
        cwd=again, env=curl_env(server, home), capture_output=True, text=True, timeout=60,
    )
    assert p.returncode != 0 and "returned error: 404" in p.stderr, p
    assert list(again.iterdir()) == [], "an error answer must not be left as a certificate"

    # The mongod section's commands, in order, where the command-line walk left alice.pem.
    [commands] = readme_section_blocks("Using the certificates with your own mongod", "sh")[:1]
    env = {**on_path(isolated_env(home)), "DBCERTS_DATA_DIR": str(server.data_dir)}
    if server.database_url:
        env["DBCERTS_DATABASE_URL"] = server.database_url
    out = run_script(commands, work, env)
    ca_file = work / "dbcerts-ca.pem"
    assert stat.S_IMODE(ca_file.stat().st_mode) == 0o644
    assert ca_file.read_text() == project_ca_file(server, cli_group, tmp_path / "cli-ca.pem").read_text()
    assert "alice.pem: OK" in out.stdout.splitlines(), out.stdout
    assert "subject=CN=alice" in out.stdout.splitlines(), out.stdout
    cert = check_certificate(server, cli_group, work / "alice.pem", ca_file)

    # What needs a mongod is not run; what it relies on is checked.
    [conf] = readme_section_blocks("Using the certificates with your own mongod", "yaml")
    settings = dict(re.findall(r"^\s+(mode|CAFile): (\S+)", conf, re.M))
    assert settings["mode"] == "requireTLS", conf
    assert pathlib.Path(settings["CAFile"]).name == ca_file.name, conf
    [create_user] = readme_section_blocks("Using the certificates with your own mongod", "js")
    assert re.search(r'createUser: "([^"]+)"', create_user).group(1) == cert.subject.rfc4514_string()
    mongosh = readme_section_blocks("Using the certificates with your own mongod", "sh")[1]
    flags = dict(re.findall(r"--(tlsCertificateKeyFile|tlsCAFile) (\S+)", mongosh))
    assert flags == {"tlsCertificateKeyFile": "alice.pem", "tlsCAFile": "server-ca.pem"}, mongosh
    # mongod's own certificate, from the CA that server-ca.pem holds.
    throwaway = make_server_tls(tmp_path)
    shutil.copy(throwaway.ca_path, work / flags["tlsCAFile"])
    mongod = ServerTls(work / flags["tlsCAFile"], throwaway.cert_path, throwaway.key_path)
    hs = mutual_tls(mongod, trusted_client_ca=ca_file, client_chain=work / flags["tlsCertificateKeyFile"])
    assert hs.server_error is None and hs.client_error is None, (hs.server_error, hs.client_error)
    assert dict(x[0] for x in hs.server_peer["subject"]) == {"commonName": "alice"}
    assert hs.client_received == b"hello alice\n"


def test_the_readme_access_control_block_after_the_curl_walk(make_server, tmp_path):
    server = make_server()
    fresh = tmp_path / "walk"
    fresh.mkdir()
    env = curl_env(server, tmp_path)
    walked = run_script(readme_block("curl-walk"), fresh, env)
    group = re.search(r"^project demo-curl: GROUP=([0-9a-f]{24})$", walked.stdout, re.M).group(1)
    block = readme_block("access-walk")
    assert block.startswith("set -euo pipefail\n"), block
    # Without GROUP it stops before any call, saying what it needs.
    refused = subprocess.run(["bash", "-c", block], cwd=fresh, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "export GROUP=" in refused.stderr, refused
    out = run_script(block, fresh, {**env, "GROUP": group})
    public, private = re.search(r"^monitoring key: public (\S+), private (\S+)$", out.stdout, re.M).groups()
    remember_secret(private)
    client_id, secret = re.search(r"^service account ci: client id (\S+), secret (\S+)$", out.stdout, re.M).groups()
    remember_secret(secret)

    # The key: an organization member that reads the one project, from one address only.
    keys = server.call("GET", f"/orgs/{server.org_id}/apiKeys").json()["results"]
    [key] = [k for k in keys if k["publicKey"] == public]
    assert key["desc"] == "monitoring"
    roles = {(r.get("groupId"), r.get("orgId"), r["roleName"]) for r in key["roles"]}
    assert roles == {(None, server.org_id, "ORG_MEMBER"), (group, None, "GROUP_READ_ONLY")}, key["roles"]
    listed = server.call("GET", f"/orgs/{server.org_id}/apiKeys/{key['id']}/accessList").json()["results"]
    assert [e["ipAddress"] for e in listed] == ["192.0.2.10"]
    r = requests.get(
        server.url(f"/groups/{group}"), auth=HTTPDigestAuth(public, private), headers={"Accept": V2}, timeout=60
    )
    assert r.status_code == 403, r.text  # 127.0.0.1 is not on its access list

    # The service account, and the bearer call the block made with its token.
    accounts = server.call("GET", f"/orgs/{server.org_id}/serviceAccounts", accept=SA_V).json()["results"]
    assert [(a["name"], a["clientId"]) for a in accounts] == [("ci", client_id)]
    listing = json.loads(out.stdout[out.stdout.rindex('{"links"'):])
    assert group in [g["id"] for g in listing["results"]]
    check_certificate(server, group, fresh / "alice.pem", project_ca_file(server, group, tmp_path / "ca.pem"))
