"""The operator endpoints over real HTTP: `GET /health/live`, `GET /health/ready` and
`GET /metrics` (Prometheus text format, on the metrics listener) of the real binary.

None of them authenticates, so each is checked to answer without credentials and to say no
more than it must. The metrics are checked for exact figures: the issued-certificates counter
per project and algorithm, request counters by operation and status (401 included), the key
pool gauge, store timings, and the expiry gauges, whose expected values are computed here from
each certificate's real notAfter and the scrape time.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import subprocess
import time

import pytest
import requests

from _certs_util import split_pem, unique_user
from conftest import V2, dbcerts_bin

DAY = 86_400
CERTS_OP = "/api/atlas/v2/groups/{groupId}/databaseUsers/{first}/certs"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


# ------------------------------------------------------------------ a Prometheus text parser


class Scrape:
    """One `/metrics` answer: the samples by name and label set, and the HELP/TYPE lines."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset], float] = {}
        self.types: dict[str, str] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind
                continue
            if line.startswith("#"):
                continue
            m = SAMPLE.match(line)
            assert m, f"not a Prometheus sample line: {line!r}"
            name, labels, value = m.groups()
            pairs = frozenset(LABEL.findall(labels or ""))
            key = (name, pairs)
            assert key not in self.samples, f"duplicate series: {line!r}"
            self.samples[key] = float(value)

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (n, labels) in self.samples if n == name]


def scrape(server) -> tuple[Scrape, int, int]:
    """GETs /metrics (on the metrics listener) without credentials; returns it with the unix
    seconds before and after."""
    before = int(time.time())
    r = requests.get(server.metrics_url, timeout=30)
    after = int(time.time())
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4"
    assert r.headers["Cache-Control"] == "no-store"
    return Scrape(r.text), before, after


def issue(server, gid: str, user: str, months: int = 3):
    r = server.call(
        "POST", f"/groups/{gid}/databaseUsers/{user}/certs", json={"monthsUntilExpiration": months}
    )
    assert r.status_code == 201, r.text
    return split_pem(r.text)


# ------------------------------------------------------------------ health


def test_health_answers_without_credentials_and_reveals_nothing(make_server):
    s = make_server()
    version = subprocess.run([dbcerts_bin(), "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    revealing = [version, "sqlite", "postgres", "dbcerts", str(s.data_dir), s.org_id, s.public_key]
    for path in ("/health/live", "/health/ready"):
        for headers in (
            {},
            {"Accept": V2},
            # Credentials are neither needed nor looked at: a wrong Digest header changes nothing.
            {"Authorization": 'Digest username="nobody", realm="MMS Public API", nonce="x", uri="/", response="y"'},
            {"Authorization": "Bearer not-a-token"},
        ):
            r = requests.get(f"{s.root}{path}", headers=headers, timeout=10)
            assert r.status_code == 200, (path, headers, r.text)
            assert r.content == b'{"status":"ok"}'
            assert r.headers["Content-Type"] == "application/json"
            assert r.headers["Cache-Control"] == "no-store"
            assert "WWW-Authenticate" not in r.headers
            shown = "\n".join(f"{k}: {v}" for k, v in r.headers.items()).lower()
            for word in revealing:
                assert word.lower() not in shown, f"{path} reveals {word!r} in its headers:\n{shown}"


def test_health_and_metrics_answer_only_get(make_server):
    s = make_server()
    for url in (f"{s.root}/health/live", f"{s.root}/health/ready", s.metrics_url):
        r = requests.post(url, timeout=10)
        assert r.status_code == 405, (url, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"detail", "error", "errorCode", "parameters", "reason"}, body
        assert body["error"] == 405


# ------------------------------------------------------------------ metrics


def test_metrics_count_issued_certificates_requests_and_the_key_pool(make_server):
    s = make_server()
    gid, other = s.create_project(), s.create_project()
    user, user2 = unique_user("met"), unique_user("met")
    s.create_user(gid, user)
    s.create_user(other, user2)
    pems = [issue(s, gid, user) for _ in range(3)]
    issue(s, other, user2)
    assert len({p.cert.serial_number for p in pems}) == 3

    # Two requests without credentials: 401, counted under their operation.
    for _ in range(2):
        r = requests.get(s.url(f"/groups/{gid}/databaseUsers/{user}/certs"), headers={"Accept": V2}, timeout=30)
        assert r.status_code == 401, r.text
    # One with a wrong key: 401 too.
    r = requests.get(
        s.url(f"/groups/{gid}/databaseUsers/{user}/certs"),
        headers={"Accept": V2},
        auth=requests.auth.HTTPDigestAuth(s.public_key, "0" * len(s.private_key)),
        timeout=30,
    )
    assert r.status_code == 401, r.text

    m, _, _ = scrape(s)
    issued = "dbcerts_certificates_issued_total"
    assert m.types[issued] == "counter"
    assert m.get(issued, group_id=gid, algorithm="ecdsa-p256") == 3
    assert m.get(issued, group_id=other, algorithm="ecdsa-p256") == 1
    assert sorted((x["group_id"], x["algorithm"]) for x in m.series(issued)) == sorted(
        [(gid, "ecdsa-p256"), (other, "ecdsa-p256")]
    )

    reqs = "dbcerts_http_requests_total"
    assert m.types[reqs] == "counter"
    assert m.get(reqs, operation=f"POST {CERTS_OP}", status="201") == 4
    # The two anonymous GETs, and requests' two tries with the wrong key (a challenge, then
    # the signed attempt), all on the list operation; nothing on it succeeded.
    assert m.get(reqs, operation=f"GET {CERTS_OP}", status="401") == 4
    assert m.get(reqs, operation=f"GET {CERTS_OP}", status="200") is None
    assert m.get(reqs, operation="GET /metrics", status="200") is None  # this scrape not yet
    statuses = {x["status"] for x in m.series(reqs)}
    assert {"201", "401"} <= statuses
    assert all(re.fullmatch(r"[1-5]\d\d", st) for st in statuses), statuses

    assert m.types["dbcerts_key_pool_keys"] == "gauge"
    pool = m.get("dbcerts_key_pool_keys")
    assert pool is not None and pool == int(pool) and 0 <= pool <= 2, pool  # --key-pool-size 2

    hist = "dbcerts_store_operation_duration_seconds"
    assert m.types[hist] == "histogram"
    # Every write of the calls above went through the journal's group commit: 4 certificates (each
    # with its audit entry), the audit entries of 4 creations (projects, users) and of the one
    # failed authentication. They came one after another, so each was a commit of its own.
    assert m.types["dbcerts_journal_commits_total"] == "counter"
    assert m.get("dbcerts_journal_writes_total") == 9
    assert m.get("dbcerts_journal_commits_total") == 9
    assert m.get(f"{hist}_count", operation="commit_batch") == 9
    assert m.get(f"{hist}_bucket", operation="commit_batch", le="+Inf") == 9

    # The next scrape counts the previous one; the figures above did not move.
    m2, _, _ = scrape(s)
    assert m2.get(reqs, operation="GET /metrics", status="200") == 1
    assert m2.get(issued, group_id=gid, algorithm="ecdsa-p256") == 3
    assert m2.get(reqs, operation=f"GET {CERTS_OP}", status="401") == 4

    # Nothing secret in the exposition: no API key secret, no issued key material.
    assert s.private_key not in m2.text
    for p in pems:
        assert not any(line in m2.text for line in p.key_b64_lines)
        assert p.cert_b64[:64] not in m2.text


@pytest.mark.dates
def test_expiry_gauges_follow_real_not_after(make_server):
    s = make_server()
    gid, later_gid = s.create_project(), s.create_project()
    user, later_user = unique_user("exp"), unique_user("exp")
    s.create_user(gid, user)
    s.create_user(later_gid, later_user)
    month_certs = [issue(s, gid, user, months=1) for _ in range(2)]
    issue(s, later_gid, later_user, months=3)  # 89+ days away: in neither bucket

    # Rows written straight into the store, copying a real certificate's DER: one expiring in
    # 3 days, one expired a minute ago, one 40 days away.
    template = month_certs[0].cert.serial_number
    now = int(time.time())
    rows = {"in_3_days": now + 3 * DAY, "expired": now - 60, "in_40_days": now + 40 * DAY}
    for not_after in rows.values():
        serial = secrets.randbelow(2**62) + 1
        s.sql(
            "INSERT INTO certificates (serial, project_id, username, subject, not_before, not_after, created_ms, cert) "
            "SELECT ?, project_id, username, subject, ?, ?, ?, cert FROM certificates WHERE serial = ?",
            serial, now - 3600, not_after, now * 1000, template,
        )
    assert len(s.sql("SELECT serial FROM certificates WHERE project_id = ?", gid)) == 5

    m, before, after = scrape(s)
    exp = "dbcerts_certificates_expiring"
    assert m.types[exp] == "gauge"

    def expected(scrape_now: int) -> tuple[int, int]:
        not_afters = [int(p.cert.not_valid_after_utc.timestamp()) for p in month_certs] + list(rows.values())
        live = [na for na in not_afters if na > scrape_now]
        return (
            sum(na <= scrape_now + 7 * DAY for na in live),
            sum(na <= scrape_now + 30 * DAY for na in live),
        )

    # A 1-month certificate lives 28 to 31 days: whether it is in the 30-day bucket depends on
    # the month. The server's "now" lies between `before` and `after`.
    allowed = {expected(t) for t in range(before, after + 1)}
    got = (m.get(exp, group_id=gid, within="7d"), m.get(exp, group_id=gid, within="30d"))
    assert got in {(float(a), float(b)) for a, b in allowed}, (got, allowed)
    assert got[0] == 1  # the row expiring in 3 days, and only it
    assert got[1] >= got[0]  # 30d includes 7d
    for p in month_certs:
        days = (p.cert.not_valid_after_utc - dt.datetime.fromtimestamp(before, dt.timezone.utc)).total_seconds() / DAY
        assert 27 < days <= 31, days

    # The 3-month project has nothing expiring: no gauge, or zero.
    assert m.get(exp, group_id=later_gid, within="7d") in (None, 0)
    assert m.get(exp, group_id=later_gid, within="30d") in (None, 0)

    # Once the 3-day row is gone, the next scrape drops it from both buckets.
    s.sql("DELETE FROM certificates WHERE project_id = ? AND not_after = ?", gid, rows["in_3_days"])
    del rows["in_3_days"]
    m2, before2, after2 = scrape(s)
    allowed2 = {expected(t) for t in range(before2, after2 + 1)}
    got2 = (m2.get(exp, group_id=gid, within="7d"), m2.get(exp, group_id=gid, within="30d"))
    assert got2 in {(float(a), float(b)) for a, b in allowed2}, (got2, allowed2)
    assert got2[0] == 0
