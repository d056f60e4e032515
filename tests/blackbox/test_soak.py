"""The quick soak: tests/reliability/soak.py's mixed load for 20 seconds.

The same load as the 15-minute soak (`scripts/reliability soak`): eight workers, half over
Digest and half with a service account's Bearer token, listing projects, users and a reference
user's 120 certificates on every page size, creating certificates, creating, patching and
deleting MANAGED database users, setting and clearing user security, moving to new projects
and deleting the old ones, on this suite's backend. Every answer must be the operation's
documented success: no 4xx is expected, no 5xx, no connection error; the server must exit 0
on SIGTERM afterwards (checked by the fixture).

Memory: 20 seconds cannot tell a leak from warm-up, so this checks only a loose sanity bound
(the server's RSS stays under 1 GiB, where a debug build uses some 50 MiB); the growth verdict
belongs to the long run.
"""

from __future__ import annotations

import pathlib
import sys

import pytest

from conftest import _server

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "reliability"))
import soak  # noqa: E402

DURATION = 20
RSS_SANITY_KIB = 1024 * 1024


@pytest.fixture()
def soak_server(tmp_path):
    yield from _server(tmp_path, "--key-algorithm", "ecdsa-p256")


def test_quick_soak(soak_server):
    # Project moves every 50 operations (not 250), so that 20 s surely include some.
    load = soak.Load(soak_server, concurrency=8, sample_interval=5.0, rotate_every=50, log=lambda line: None)
    report = load.run(DURATION)
    summary = {op: dict(c) for op, c in report["status_by_operation"].items()}
    assert not report["harness_failures"], report["harness_failures"]
    assert report["unexpected_count"] == 0, report["unexpected_first"]
    # Every operation of the mix ran, and each answered only its documented success.
    assert set(summary) >= set(soak.WEIGHTS) | {"createGroup", "deleteGroup"}, summary
    for op, counts in summary.items():
        assert set(counts) == {str(soak.EXPECTED[op])}, (op, counts)
    assert report["requests_by_auth"].get("digest") and report["requests_by_auth"].get("bearer"), report
    max_rss = max(s["rss_kib"] for s in report["samples"])
    assert max_rss < RSS_SANITY_KIB, f"RSS reached {max_rss} KiB in {DURATION} s"
