"""The README's first five command-line steps, run exactly as written, against a real server.

README.md's "With the command line" block is read from the file (not copied here), so the test
fails if the README drifts from what the CLI does. `dbcerts config init` is answered through a
pseudo-terminal, as a person at a terminal would answer it (the private key prompt does not
echo); the only substitution is the project ID the second command prints, which the third
command's placeholder asks for. The certificate on disk must load with Python's ssl module.
"""

from __future__ import annotations

import os
import pathlib
import pty
import re
import select
import shlex
import ssl
import stat
import subprocess
import termios
import time

from cryptography import x509

from conftest import ROOT, dbcerts_bin, remember_private_key


def readme_first_five() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- first-five", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 5, commands
    assert all(c.startswith("dbcerts ") for c in commands), commands
    return commands


def isolated_env(home: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_ATLAS_", "DBCERTS_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"))
    return env


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


def test_the_readme_first_five_commands_work_as_written(make_server, tmp_path):
    server = make_server()
    commands = readme_first_five()
    home = tmp_path / "home"
    work = tmp_path / "work"
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

    pem_path = work / "alice.pem"
    assert stat.S_IMODE(pem_path.stat().st_mode) == 0o600
    pem = pem_path.read_text()
    remember_private_key(pem)
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(pem_path)
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.rfc4514_string() == "CN=alice"
    listed = server.call("GET", f"/groups/{group_id}/databaseUsers/alice/certs").json()["results"]
    assert [c["_id"] for c in listed] == [cert.serial_number]
