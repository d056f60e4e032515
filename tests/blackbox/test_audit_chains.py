"""The audit log's per-project chains against tampering and against callers (review 26,
findings 2 and 10), through the real binary: `dbcerts audit verify [--checkpoint]` on a store
whose rows are deleted behind the server's back, and which chain a refused call is recorded in.
"""

from __future__ import annotations

import re

from _certs_util import unique_user
from test_access_control import audit_entries, create_org_key, dbcerts

ROOT = re.compile(r"^root digest: ([0-9a-f]{64})$", re.M)


def verify(s, *args: str, ok: bool = True):
    out = dbcerts("audit", "verify", *args, *s.store_args, check=False)
    assert (out.returncode == 0) == ok, (out.stdout, out.stderr)
    return out


def newest_of_chain(s, gid: str) -> int:
    [(seq,)] = s.sql("SELECT MAX(seq) FROM audit_log WHERE chain = ?", gid)
    return int(seq)  # psql gives text


def test_cut_chain_stays_broken_after_the_next_append(fresh_server):
    s = fresh_server
    gid = s.create_project()
    s.create_user(gid, unique_user("cut"))
    s.create_user(gid, unique_user("cut"))
    out = verify(s)
    assert "no checkpoint yet" in out.stdout
    assert ROOT.search(out.stdout), out.stdout

    # Cut the project chain's newest entry while the server runs.
    victim = newest_of_chain(s, gid)
    assert [int(v) for (v,) in s.sql("DELETE FROM audit_log WHERE seq = ? RETURNING seq", victim)] == [victim]
    out = verify(s, ok=False)
    assert f"broken at entry {victim} (chain of project {gid})" in out.stderr, out.stderr
    assert "missing" in out.stderr

    # The project's next audited call does not heal the cut: it chains onto the recorded head,
    # after an entry saying what the server found.
    s.create_user(gid, unique_user("after"))
    out = verify(s, ok=False)
    assert f"broken at entry {victim} (chain of project {gid})" in out.stderr, out.stderr
    assert "missing" in out.stderr
    mine = [e for e in audit_entries(s) if e["projectId"] == gid]
    assert mine[-2]["action"] == "audit.chain.mismatch", mine[-2]
    assert mine[-2]["actor"] == "dbcerts"
    assert mine[-2]["details"]["chainedOnto"] == "recordedHead"
    assert mine[-2]["details"]["recordedHead"]["seq"] == victim
    assert mine[-1]["action"] == f"POST /api/atlas/v2/groups/{gid}/databaseUsers"


def test_checkpoint_finds_a_chain_deleted_with_its_head(fresh_server):
    s = fresh_server
    gid, other = s.create_project(), s.create_project()
    s.create_user(gid, unique_user("gone"))
    s.create_user(other, unique_user("kept"))
    out = verify(s, "--checkpoint")
    written = re.search(r"^checkpoint written at entry (\d+) .*hash ([0-9a-f]{64})$", out.stdout, re.M)
    assert written, out.stdout
    cp = int(written.group(1))
    first_root = ROOT.search(out.stdout).group(1)
    out = verify(s)
    assert f"held to the checkpoint at entry {cp}" in out.stdout, out.stdout
    assert ROOT.search(out.stdout).group(1) != first_root, "the checkpoint is part of the log"
    [checkpoint] = [e for e in audit_entries(s) if e["seq"] == cp]
    assert checkpoint["action"] == "audit.checkpoint" and checkpoint["projectId"] is None
    recorded = {c["chain"]: c for c in checkpoint["details"]["chains"]}
    assert {"", gid, other} <= set(recorded)
    # More activity after the checkpoint is fine.
    s.create_user(gid, unique_user("more"))
    verify(s)

    # Delete the project's whole chain and its recorded head: nothing in the log is left to
    # link to, but the checkpoint recorded where the chain ended.
    s.sql("DELETE FROM audit_chain_heads WHERE chain = ? RETURNING chain", gid)
    s.sql("DELETE FROM audit_log WHERE chain = ? RETURNING seq", gid)
    out = verify(s, ok=False)
    seq = recorded[gid]["seq"]
    assert f"broken at entry {seq} (chain of project {gid})" in out.stderr, out.stderr
    assert "checkpoint" in out.stderr


def test_refused_calls_do_not_write_to_project_chains(fresh_server):
    s = fresh_server
    gid = s.create_project()
    s.create_user(gid, unique_user("own"))
    made_up = "0123456789abcdef01234567"
    body = {"databaseName": "$external", "username": "x", "x509Type": "MANAGED",
            "roles": [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}]}
    r = s.call("POST", f"/groups/{made_up}/databaseUsers", json={**body, "groupId": made_up})
    assert r.status_code == 404, r.text
    # A key of the organization with no role in the project: the project does not exist for it.
    outsider, _ = create_org_key(s, roles=["ORG_MEMBER"])
    r = outsider.call("POST", f"/groups/{gid}/databaseUsers", json={**body, "groupId": gid})
    assert r.status_code == 404, r.text
    r = outsider.call("DELETE", f"/groups/{gid}")
    assert r.status_code == 404, r.text

    entries = audit_entries(s)
    refused = [e for e in entries if e["status"] == 404]
    assert {e["action"] for e in refused} == {
        f"POST /api/atlas/v2/groups/{made_up}/databaseUsers",
        f"POST /api/atlas/v2/groups/{gid}/databaseUsers",
        f"DELETE /api/atlas/v2/groups/{gid}",
    }
    assert all(e["projectId"] is None for e in refused), refused
    # The owner's own call is in the project's chain; no chain for the made-up id.
    assert any(e["projectId"] == gid and e["status"] == 201 for e in entries)
    out = verify(s)
    assert f"chain of project {gid}:" in out.stdout
    assert made_up not in out.stdout
    [(heads,)] = s.sql("SELECT COUNT(*) FROM audit_chain_heads WHERE chain = ?", made_up)
    assert int(heads) == 0
