"""`dbcerts ca export`, the operator command that reads a project's CA from the server's store:
run in the wrong place it says which directory it looked in and how to name the right one,
and `--out` writes the file only when the export succeeded, never half or empty.
"""

from __future__ import annotations

import pathlib
import stat
import subprocess

from conftest import dbcerts_bin


def ca_export(*args, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [dbcerts_bin(), "ca", "export", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_run_elsewhere_it_names_the_data_directory_and_writes_nothing(server, tmp_path):
    gid = server.create_project()
    out = tmp_path / "ca.pem"
    p = ca_export("--project", gid, "--out", out, cwd=tmp_path)
    assert p.returncode != 0, p.stdout
    assert "dbcerts-data" in p.stderr and "--data-dir" in p.stderr and "DBCERTS_DATA_DIR" in p.stderr, p.stderr
    assert sorted(tmp_path.iterdir()) == [], "no file, and no data directory created"


def test_out_writes_the_ca_once_and_replaces_it_only_with_force(server, tmp_path):
    gid = server.create_project()
    served = server.session.get(f"{server.root}/api/dbcerts/v1/groups/{gid}/ca", timeout=60)
    assert served.status_code == 200, served.text
    out = tmp_path / "dbcerts-ca.pem"

    p = ca_export("--project", gid, "--out", out, *server.store_args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "", "the PEM goes to the file, not stdout"
    assert out.read_text() == served.text
    assert stat.S_IMODE(out.stat().st_mode) == 0o644, oct(out.stat().st_mode)

    out.write_text("keep me\n")
    p = ca_export("--project", gid, "--out", out, *server.store_args, cwd=tmp_path)
    assert p.returncode != 0 and "exists; pass --force" in p.stderr, p.stderr
    assert out.read_text() == "keep me\n"

    p = ca_export("--project", gid, "--out", out, "--force", *server.store_args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert out.read_text() == served.text
    assert sorted(f.name for f in tmp_path.iterdir()) == [out.name], "no temporary file left"


def test_a_failed_export_leaves_no_file(server, tmp_path):
    out = tmp_path / "ca.pem"
    p = ca_export("--project", "0" * 24, "--out", out, *server.store_args, cwd=tmp_path)
    assert p.returncode != 0 and "no project" in p.stderr, p.stderr
    assert not out.exists()
    p = ca_export("--project", server.create_project(), "--force", *server.store_args, cwd=tmp_path)
    assert p.returncode == 2 and "--out" in p.stderr, p.stderr
