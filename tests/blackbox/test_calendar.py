"""`monthsUntilExpiration` across month ends, on a server whose clock really is at that date.

The server runs under libfaketime (Debian's `faketime`, installed by scripts/test), its wall
clock started at the given instant and running on; its monotonic clock is left alone. The
chosen behaviour is `java.time`'s `plusMonths`, which Atlas runs on: the same day-of-month N
months later, or the last day of that month when it has no such day (Jan 31 + 1 month is
Feb 28, or Feb 29 in a leap year), at the same time of day; a day that exists is kept, so
Apr 30 + 1 month is May 30, not May 31. The list reports the certificate's own notAfter.
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib

import pytest
from cryptography import x509

from _certs_util import split_pem, unique_user

LIBFAKETIME = pathlib.Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")

CASES = [
    # (server clock, months, expected notAfter date)
    ("2027-01-31 10:00:00", 1, dt.date(2027, 2, 28)),
    ("2028-01-31 10:00:00", 1, dt.date(2028, 2, 29)),
    ("2028-02-29 10:00:00", 1, dt.date(2028, 3, 29)),
    ("2028-02-29 10:00:00", 12, dt.date(2029, 2, 28)),
    ("2028-02-29 10:00:00", 24, dt.date(2030, 2, 28)),
    ("2026-12-31 10:00:00", 1, dt.date(2027, 1, 31)),
    ("2026-12-31 10:00:00", 2, dt.date(2027, 2, 28)),
    ("2026-12-31 10:00:00", 3, dt.date(2027, 3, 31)),
    ("2026-12-31 10:00:00", 24, dt.date(2028, 12, 31)),
    ("2027-04-30 10:00:00", 1, dt.date(2027, 5, 30)),
    ("2027-06-30 10:00:00", 2, dt.date(2027, 8, 30)),
    ("2027-08-31 10:00:00", 1, dt.date(2027, 9, 30)),
    ("2027-10-31 10:00:00", 1, dt.date(2027, 11, 30)),
    ("2027-03-31 10:00:00", 11, dt.date(2028, 2, 29)),
]


def _parse_z(s: str) -> dt.datetime:
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


@pytest.fixture()
def server_at(make_server, monkeypatch):
    if not LIBFAKETIME.exists():
        pytest.fail(f"{LIBFAKETIME} is missing: scripts/test installs Debian's faketime package")

    def start(clock: str):
        # Only the server's environment; the test's own (which may itself be under libfaketime,
        # as in `scripts/reliability calendar`) is put back as it was.
        with monkeypatch.context() as env:
            env.setenv("LD_PRELOAD", str(LIBFAKETIME))
            env.setenv("FAKETIME", f"@{clock}")
            env.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            env.setenv("TZ", "UTC")
            env.delenv("FAKETIME_SHARED", raising=False)  # the `faketime` wrapper's, if any
            return make_server()

    return start


@pytest.mark.parametrize("clock,months,expected", CASES, ids=[f"{c[:10]}+{m}" for c, m, _ in CASES])
def test_months_until_expiration_at_month_ends(server_at, clock, months, expected):
    server = server_at(clock)
    gid = server.create_project()
    name = unique_user()
    server.create_user(gid, name)
    r = server.call("POST", f"/groups/{gid}/databaseUsers/{name}/certs", json={"monthsUntilExpiration": months})
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(split_pem(r.text).cert_pem)
    start = dt.datetime.strptime(clock, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)

    # The server's clock really was at `clock`: created a few seconds after it, backdated 1 h.
    created = cert.not_valid_before_utc + dt.timedelta(hours=1)
    assert start <= created < start + dt.timedelta(minutes=2), created
    # notAfter: the expected day, at the creation's time of day.
    assert cert.not_valid_after_utc.date() == expected
    assert cert.not_valid_after_utc.time() == created.time()

    listed = server.call("GET", f"/groups/{gid}/databaseUsers/{name}/certs").json()["results"]
    assert len(listed) == 1
    assert _parse_z(listed[0]["notAfter"]) == cert.not_valid_after_utc
    # Atlas's createdAt is the backdated notBefore (docs/COMPATIBILITY.md, observed).
    assert _parse_z(listed[0]["createdAt"]) == cert.not_valid_before_utc
    assert listed[0]["_id"] == cert.serial_number
