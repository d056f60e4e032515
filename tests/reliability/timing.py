#!/usr/bin/env python3
"""Timing test: does a failed authentication tell, by how long it takes, whether the principal
it claimed exists? (Issue 15, item 6: an unknown public key answered measurably faster than a
known key with a wrong password, medians 5.3 vs 6.2 ms, z = 3.7.)

    .venv/bin/python tests/reliability/timing.py [--samples 1000] [--bin target/release/dbcerts]
        [--backend sqlite|postgres] [--alpha 0.001] [--report FILE]

Starts the binary (`--bin`, else `DBCERTS_BIN`, else `target/release/dbcerts`, built if missing)
with the failed-authentication throttling lifted (`conftest.UNTHROTTLED`: no slow-down, no
lockout, which would otherwise be what the test measures), on SQLite or, with `--backend
postgres`, on a new database of the cluster `DBCERTS_TEST_POSTGRES_URL` names. Then, for each
of two comparisons, it times `--samples` failed attempts of each kind, interleaved in a random
order on one keep-alive connection (so that drift in the machine's load falls on both alike),
after `--warmup` untimed attempts of each:

- digest: `GET /api/atlas/v2/groups` with a Digest response computed for a made-up public key
  (eight lowercase letters, like real ones; a new one each time) against the same request for
  the bootstrap key with a wrong private key. Both are answered 401.
- oauth: `POST /api/oauth/token` with a made-up client id (the real ids' shape) against a real
  service account's client id with a wrong secret. Both are answered 401 `invalid_client`.

Each comparison runs against two servers. `digest` and `oauth`: the read cache off
(`cache-ttl-seconds = 0`), so every attempt runs the store path (issue 15, item 6).
`digest_cached` and `oauth_cached`: the default read cache, each timed attempt the second of two
back to back for the same principal (the made-up one new for each pair), as an attacker
probing a name twice would send them: a known key is then answered from the cache, and so must
an unknown one be (review 26, finding 3: before "not found" was cached for credentials, the
unknown key's second attempt ran the store path again and was slower).

A sample is the client's wall time from sending the request to having read the whole answer.
For each comparison two two-sided tests are run: Mann-Whitney U (normal approximation with the
tie correction) and a permutation test of the difference of the medians (`--permutations`
relabellings). Verdict: no significant difference, both p-values at least `--alpha`.

So that the verdict is not vacuous, the same tests are run again with the known-principal
samples shifted by the difference found before (0.9 ms, and 17 % of the measured median, the
relative size of that difference): each shift must fail the verdict (a p-value below alpha).
The report also gives the test's sensitivity on this run's noise (the smallest shift
Mann-Whitney detects between two random halves of the pooled samples) and a positive control
measured on the real server: the digest attempt with a nonce the server never issued, which
is refused before the store is read and the key is unsealed (reported, not asserted: its size
depends on the machine; cache-off server only). Against the code before either fix (one store
statement for an unknown key or client, four for a known one; unknown credentials not cached)
the verdict fails: docs/RELIABILITY.md has the figures.

The data directory is on /dev/shm when there is one: the disk's flush times (every failure
writes an audit entry durably), the same for both kinds of attempt, would only add noise.

The JSON report (`--report`) holds the medians, quartiles, p-values, z and the detection
figures; the exit status is non-zero when a verdict fails.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import math
import os
import pathlib
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import soak  # noqa: E402  (binary(), start_server(), and through it the black-box helpers)

conftest = soak.conftest
REALM = "MMS Public API"
NONCE = re.compile(r'nonce="([^"]+)"')
URI = "/api/atlas/v2/groups"
LOWER = "abcdefghijklmnopqrstuvwxyz"
PREVIOUS_SHIFT_MS = 6.2 - 5.3
PREVIOUS_RELATIVE = (6.2 - 5.3) / 5.3


# ------------------------------------------------------------------ statistics


def mann_whitney(a: list[float], b: list[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: (z, p), normal approximation with the tie correction."""
    n1, n2 = len(a), len(b)
    pooled = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, pooled) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    mean = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    z = (u1 - mean) / math.sqrt(var) if var > 0 else 0.0
    return z, math.erfc(abs(z) / math.sqrt(2))


def permutation_medians(a: list[float], b: list[float], rounds: int, rng: random.Random) -> float:
    """Two-sided permutation test of median(b) - median(a): the p-value."""
    observed = abs(statistics.median(b) - statistics.median(a))
    pooled = a + b
    n1 = len(a)
    extreme = 0
    for _ in range(rounds):
        rng.shuffle(pooled)
        if abs(statistics.median(pooled[n1:]) - statistics.median(pooled[:n1])) >= observed - 1e-12:
            extreme += 1
    return (extreme + 1) / (rounds + 1)


def compare(unknown: list[float], known: list[float], alpha: float, rounds: int, seed: int) -> dict:
    z, p_mw = mann_whitney(unknown, known)
    p_perm = permutation_medians(unknown, known, rounds, random.Random(seed))
    return {
        "mann_whitney_z": round(z, 3),
        "mann_whitney_p": p_mw,
        "permutation_medians_p": p_perm,
        "significant": p_mw < alpha and p_perm < alpha,
        "either_significant": p_mw < alpha or p_perm < alpha,
    }


def smallest_detected_shift(unknown: list[float], known: list[float], alpha: float, rng: random.Random) -> float:
    """The test's sensitivity on this run's noise: both samples pooled and split at random into
    two halves, the smallest shift (ms) of one half that Mann-Whitney finds significant."""
    pooled = unknown + known
    rng.shuffle(pooled)
    a, b = pooled[: len(unknown)], pooled[len(unknown) :]
    lo, hi = 0.0, 5.0
    if mann_whitney(a, [x + hi for x in b])[1] >= alpha:
        return math.inf
    for _ in range(30):
        mid = (lo + hi) / 2
        if mann_whitney(a, [x + mid for x in b])[1] < alpha:
            hi = mid
        else:
            lo = mid
    return hi


def summary(samples: list[float]) -> dict:
    q = statistics.quantiles(samples, n=4)
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(samples), 4),
        "q1_ms": round(q[0], 4),
        "q3_ms": round(q[2], 4),
        "mean_ms": round(statistics.fmean(samples), 4),
    }


# ------------------------------------------------------------------ requests


def digest_header(username: str, password: str, nonce: str) -> str:
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    cnonce = secrets.token_hex(8)
    ha1 = md5(f"{username}:{REALM}:{password}")
    ha2 = md5(f"GET:{URI}")
    response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{username}", realm="{REALM}", nonce="{nonce}", uri="{URI}", '
        f'algorithm=MD5, response="{response}", qop=auth, nc=00000001, cnonce="{cnonce}"'
    )


class Client:
    """One keep-alive connection; times each exchange."""

    def __init__(self, host_port: str) -> None:
        host, port = host_port.split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.nonce = ""

    def timed(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[float, int, object, bytes]:
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        payload = r.read()
        took = (time.perf_counter() - started) * 1000
        return took, r.status, r.headers, payload

    def digest(self, username: str, password: str, nonce: str | None = None) -> float:
        header = digest_header(username, password, nonce or self.nonce)
        took, status, headers, payload = self.timed(
            "GET", URI, None, {"Authorization": header, "Accept": conftest.V2}
        )
        if status != 401:
            raise RuntimeError(f"expected 401, got {status}: {payload[:300]!r}")
        self.nonce = NONCE.search(headers["WWW-Authenticate"]).group(1)
        return took

    def token(self, client_id: str, secret: str) -> float:
        form = urllib.parse.urlencode({"grant_type": "client_credentials"}).encode()
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        took, status, _, payload = self.timed(
            "POST",
            "/api/oauth/token",
            form,
            {
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        if status != 401 or json.loads(payload).get("error") != "invalid_client":
            raise RuntimeError(f"expected 401 invalid_client, got {status}: {payload[:300]!r}")
        return took


def made_up(existing: set[str], make) -> str:
    while (name := make()) in existing:
        pass
    return name


def measure(kinds: dict, samples: int, warmup: int, rng: random.Random) -> dict[str, list[float]]:
    """Runs each kind's attempt `warmup` times untimed, then `samples` times timed, all kinds
    interleaved in a random order."""
    for phase, count in (("warmup", warmup), ("timed", samples)):
        order = [k for k in kinds for _ in range(count)]
        rng.shuffle(order)
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for k in order:
            times[k].append(kinds[k]())
    return times


# ------------------------------------------------------------------ main


def attempts(args, server, rng: random.Random, cached: bool) -> dict[str, dict[str, list[float]]]:
    """Times the failed attempts of both comparisons against `server`. Without `cached`, each
    unknown attempt names a new made-up principal and each known one the same real one (with
    the cache off, every attempt runs the store path). With `cached`, every attempt is the
    second of two back to back for the same principal, only the second timed, as an attacker
    would probe: a new made-up one each time, or the real one."""
    account = conftest.create_service_account(server)
    real_client = account["clientId"]
    keys = {server.public_key}
    clients = {real_client}
    c = Client(server.host_port)
    c.digest(server.public_key, "wrong")  # a first nonce
    wrong_key, wrong_secret = "wrong-private-key-0000000000000", "mdb_sa_sk_" + "0" * 40

    def twice(attempt, principal: str) -> float:
        if cached:
            attempt(principal)
        return attempt(principal)

    def digest_of(make):
        return lambda: twice(lambda k: c.digest(k, wrong_key), make())

    def token_of(make):
        return lambda: twice(lambda k: c.token(k, wrong_secret), make())

    digest_kinds = {
        "unknown": digest_of(lambda: made_up(keys, lambda: "".join(rng.choice(LOWER) for _ in range(8)))),
        "known": digest_of(lambda: server.public_key),
    }
    if not cached:
        forged = base64.b64encode(os.urandom(24)).decode()
        digest_kinds["forged_nonce"] = lambda: c.digest(server.public_key, wrong_key, nonce=forged)
    return {
        "digest": measure(digest_kinds, args.samples, args.warmup, rng),
        "oauth": measure(
            {
                "unknown": token_of(lambda: made_up(clients, lambda: f"mdb_sa_id_{secrets.token_hex(12)}")),
                "known": token_of(lambda: real_client),
            },
            args.samples,
            args.warmup,
            rng,
        ),
    }


#: The two servers the comparisons run against: the store path with the read cache off (what
#: issue 15 item 6 fixed), and the default cache with repeated probes (review 26, finding 3).
PHASES = {
    "": ({"cache-ttl-seconds": 0}, False),
    "_cached": ({}, True),
}


def run(args) -> tuple[dict, list[str]]:
    rng = random.Random(args.seed)
    os.environ["DBCERTS_BIN"] = soak.binary(args)
    # On a RAM file system where there is one (see the module's documentation).
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    failures: list[str] = []
    report: dict = {
        "backend": args.backend,
        "binary": os.environ["DBCERTS_BIN"],
        "samples_per_kind": args.samples,
        "alpha": args.alpha,
        "permutations": args.permutations,
        "previous_shift_ms": round(PREVIOUS_SHIFT_MS, 3),
        "cpus": os.cpu_count(),
        "comparisons": {},
    }
    measured: dict[str, dict[str, list[float]]] = {}
    print(f"timing: {args.samples} samples per kind, {args.backend}, binary {os.environ['DBCERTS_BIN']}", flush=True)
    for suffix, (settings, cached) in PHASES.items():
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="dbcerts-timing-", dir=shm))
        data = tmp / "data"
        data.mkdir(mode=0o700)  # serve refuses a data directory that others can enter
        server = soak.start_server(args, data, settings)
        try:
            for name, times in attempts(args, server, rng, cached).items():
                measured[name + suffix] = times
        finally:
            code = server.stop(signal.SIGTERM) if server.proc.poll() is None else server.proc.returncode
            if code != 0:
                failures.append(f"the server{suffix} exited with {code}")
            subprocess.run(["rm", "-rf", str(tmp)], check=False)

    for name, times in measured.items():
        unknown, known = times["unknown"], times["known"]
        same = compare(unknown, known, args.alpha, args.permutations, args.seed)
        median = statistics.median(unknown)
        shifts = {
            "previous_0.9ms": PREVIOUS_SHIFT_MS,
            "previous_17pct_of_median": PREVIOUS_RELATIVE * median,
        }
        injected = {}
        for label, shift in shifts.items():
            result = compare(unknown, [x + shift for x in known], args.alpha, args.permutations, args.seed)
            result["shift_ms"] = round(shift, 4)
            injected[label] = result
            # The verdict fails when either test is significant: so that is detection.
            if not result["either_significant"]:
                failures.append(f"{name}: an injected {shift:.3f} ms difference went undetected: {result}")
        entry = {
            "unknown": summary(unknown),
            "known": summary(known),
            "median_difference_ms": round(statistics.median(known) - median, 4),
            "no_injected_shift": same,
            "injected": injected,
            "smallest_detected_shift_ms": round(
                smallest_detected_shift(unknown, known, args.alpha, random.Random(args.seed)), 4
            ),
        }
        if same["either_significant"]:
            failures.append(f"{name}: unknown and known principals differ: {same}")
        if name == "digest":
            control = compare(unknown, times["forged_nonce"], args.alpha, args.permutations, args.seed)
            control["forged_nonce"] = summary(times["forged_nonce"])
            control["median_difference_ms"] = round(statistics.median(times["forged_nonce"]) - median, 4)
            entry["positive_control_forged_nonce"] = control
        report["comparisons"][name] = entry
    report["loadavg_end"] = os.getloadavg()
    report["failures"] = failures
    return report, failures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=1000, help="timed attempts per kind (default 1000; at least 500)")
    p.add_argument("--warmup", type=int, default=100, help="untimed attempts per kind first (default 100)")
    p.add_argument("--alpha", type=float, default=0.001, help="significance level, two-sided (default 0.001)")
    p.add_argument("--permutations", type=int, default=4000, help="relabellings of the permutation test (default 4000)")
    p.add_argument("--seed", type=int, default=15, help="random order and permutations (default 15)")
    p.add_argument("--bin", help="the dbcerts binary (default $DBCERTS_BIN, else target/release/dbcerts)")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--report", help="write the JSON report here")
    args = p.parse_args(argv)
    if args.samples < 500:
        p.error("--samples must be at least 500")
    report, failures = run(args)
    for name, e in report["comparisons"].items():
        s = e["no_injected_shift"]
        print(f"{name}: unknown median {e['unknown']['median_ms']} ms (IQR {e['unknown']['q1_ms']}-{e['unknown']['q3_ms']}), "
              f"known {e['known']['median_ms']} ms (IQR {e['known']['q1_ms']}-{e['known']['q3_ms']}); "
              f"Mann-Whitney z = {s['mann_whitney_z']}, p = {s['mann_whitney_p']:.3g}; permutation p = {s['permutation_medians_p']:.3g}")
        for label, r in e["injected"].items():
            print(f"  injected {label} ({r['shift_ms']} ms): z = {r['mann_whitney_z']}, p = {r['mann_whitney_p']:.3g}; "
                  f"permutation p = {r['permutation_medians_p']:.3g} -> {'detected' if r['either_significant'] else 'NOT detected'}")
        print(f"  smallest shift Mann-Whitney detects at alpha {args.alpha}: {e['smallest_detected_shift_ms']} ms")
        if "positive_control_forged_nonce" in e:
            c = e["positive_control_forged_nonce"]
            print(f"  control (forged nonce, no store read): median {c['forged_nonce']['median_ms']} ms, "
                  f"difference {c['median_difference_ms']} ms, z = {c['mann_whitney_z']}, p = {c['mann_whitney_p']:.3g}")
    if args.report:
        path = pathlib.Path(args.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report: {path}")
    print("result: " + ("FAILED: " + "; ".join(failures) if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
