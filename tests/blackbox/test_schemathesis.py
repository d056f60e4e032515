"""Property-based conformance: schemathesis against dbcerts' own OpenAPI document.

Every Atlas X.509 operation of `docs/openapi.json` (the document the server serves at
/api/dbcerts/v1/openapi.json; crates/dbcerts-server/tests/openapi.rs keeps the two identical) is
exercised against the real `dbcerts` binary, over HTTP Digest, with schemathesis's examples,
coverage and fuzzing phases, positive and negative data, and every built-in check: no 5xx, status
codes, content types, response schemas and headers, positive/negative data acceptance, enforced
authentication, unsupported methods, and the rest. Nothing outside the repository is read.
Fidelity to MongoDB's own specification is checked separately, by test_fidelity.py.

Path parameters point at real resources most of the time: a project of each operation's own
holding the MANAGED x.509 user `user389` on `$external` (with one certificate), a fresh
throwaway project for every `deleteGroup` case and a fresh throwaway user for every
`deleteGroupDatabaseUser` case, so no operation can take another's fixtures away. About one
positive case in four keeps its generated path values, to exercise the not-found paths; negative
path values are always kept.

Where a rule cannot be expressed in an OpenAPI schema (state preconditions, rules across fields,
the raw PEM body, envelopes), `_schemathesis_hooks.DIVERGENCES` drops exactly that failure (one
check, named operations, a precise condition), each with the reason docs/COMPATIBILITY.md
quotes, and `atlas_compensating_checks` validates what the dropped failure would otherwise leave
unchecked. Nothing else is switched off.

A second test follows the links schemathesis infers between operations (the spec declares no
OpenAPI links) as short stateful scenarios, with the same checks plus the stateful ones.

Both tests run once per authentication mode: `digest` (the bootstrap API key, Organization
Owner) and `bearer` (an access token of an Organization Owner service account, renewed before
it expires). The normal suite runs a smaller Bearer sample.

`DBCERTS_SCHEMATHESIS_SCALE=N` (default 1, the normal suite) multiplies the random part: the
fuzzing examples per operation and the stateful scenarios. N > 1 is the long run
(`scripts/reliability schemathesis`): both modes at the full scale, and `test_request_totals`
then requires at least `DBCERTS_SCHEMATHESIS_MIN_REQUESTS` (5000) generated requests per mode.
Every request the module sends is counted (generated cases by operation and status; every
request on the wire, including Digest challenges, schemathesis's authentication probes and the
fixtures' own calls, by status); `test_request_totals` prints the totals, writes them as JSON to
`DBCERTS_SCHEMATHESIS_REPORT` if set, and fails on any 5xx or connection error in either count.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import pathlib
import time
import weakref
import zlib

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

import _schemathesis_hooks as hooks
from conftest import V2, _server, create_service_account, remember_secret

USERNAME = "user389"
EXTERNAL = "$external"

AUTH_MODES = ("digest", "bearer")

# 1 (the default): the normal suite. N > 1: the long run, N times the random part.
SCALE = int(os.environ.get("DBCERTS_SCHEMATHESIS_SCALE") or "1")
assert SCALE >= 1, "DBCERTS_SCHEMATHESIS_SCALE must be a positive integer"
LONG_RUN = SCALE > 1
MIN_REQUESTS_LONG_RUN = int(os.environ.get("DBCERTS_SCHEMATHESIS_MIN_REQUESTS") or "5000")
REPORT_PATH = os.environ.get("DBCERTS_SCHEMATHESIS_REPORT")

# Bounded for a 2-core CI runner: the examples and coverage phases add their own cases (a fixed
# number per operation, from the spec); these bound the random part.
FUZZ_EXAMPLES = 50 * SCALE
STATEFUL_SCENARIOS = 25 * SCALE
STATEFUL_STEPS = 8
# Only authentication differs between the modes, so the normal suite samples Bearer more
# lightly (the examples and coverage phases still run in full); a long run gives both the same.
EXAMPLES = {"digest": FUZZ_EXAMPLES, "bearer": FUZZ_EXAMPLES if LONG_RUN else 15}
SCENARIOS = {"digest": STATEFUL_SCENARIOS, "bearer": STATEFUL_SCENARIOS if LONG_RUN else 8}
HYPOTHESIS = {
    "deadline": None,
    # Reproducible in CI: the same cases, in the same order, on every run.
    "derandomize": True,
    "database": None,
    # Generating bodies from the large CloudDatabaseUser/UserSecurity schemas is what is slow,
    # not the server; nothing else is suppressed.
    "suppress_health_check": [HealthCheck.too_slow],
}

# An explicit config, so a stray schemathesis.toml cannot change what this test does.
SCHEMA = schemathesis.openapi.from_path(
    hooks.SPEC_PATH, config=schemathesis.Config.from_dict({"seed": 20230101})
).include(operation_id=sorted(hooks.OPERATIONS), path_regex=r"^/api/atlas/v2/")
SCHEMA.hook(hooks.filter_failure)


class RequestTally:
    """What this module sent, per authentication mode ("other": outside a test's mode, such as
    the module fixtures' setup)."""

    def __init__(self) -> None:
        self.mode: str | None = None  # the authentication mode of the running test
        # Generated requests (every case schemathesis sends): operationId -> status -> count.
        self.generated: dict[str, dict[str, collections.Counter]] = collections.defaultdict(
            lambda: collections.defaultdict(collections.Counter)
        )
        # Every request on the wire (cases, Digest challenges and stale-nonce retries,
        # schemathesis's no-auth and wrong-auth probes, fixtures, token requests): status -> count.
        self.wire: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        # Requests that got no response at all (connection refused or reset, timeout).
        self.wire_errors: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.seconds: collections.Counter = collections.Counter()
        self.tokens_issued: collections.Counter = collections.Counter()

    @property
    def key(self) -> str:
        return self.mode or "other"

    def summary(self, mode: str) -> dict:
        per_op = {op: dict(sorted(statuses.items())) for op, statuses in sorted(self.generated[mode].items())}
        statuses: collections.Counter = collections.Counter()
        for counts in self.generated[mode].values():
            statuses.update(counts)
        return {
            "generated_requests": sum(statuses.values()),
            "generated_by_operation": {op: sum(c.values()) for op, c in per_op.items()},
            "generated_by_operation_and_status": per_op,
            "generated_by_status": dict(sorted(statuses.items())),
            "generated_by_status_class": status_classes(statuses),
            "wire_requests": sum(self.wire[mode].values()),
            "wire_by_status": dict(sorted(self.wire[mode].items())),
            "wire_by_status_class": status_classes(self.wire[mode]),
            "wire_errors": dict(self.wire_errors[mode]),
            "test_seconds": round(self.seconds[mode], 1),
            "bearer_tokens_issued": self.tokens_issued[mode],
        }


def status_classes(counts: collections.Counter) -> dict[str, int]:
    classes: collections.Counter = collections.Counter()
    for status, n in counts.items():
        classes[f"{status // 100}xx"] += n
    return dict(sorted(classes.items()))


TALLY = RequestTally()


@SCHEMA.hook
def after_call(context, case, response) -> None:
    """Counts every generated request (fuzzing, examples, coverage and stateful steps)."""
    TALLY.generated[TALLY.key][hooks.operation_id(case)][response.status_code] += 1


@pytest.fixture(scope="module", autouse=True)
def count_wire_requests():
    """Counts every HTTP request the module sends, whoever sends it, at the transport adapter."""
    original = requests.adapters.HTTPAdapter.send

    def send(adapter, request, *args, **kwargs):
        key = TALLY.key
        try:
            response = original(adapter, request, *args, **kwargs)
        except Exception as exc:
            TALLY.wire_errors[key][type(exc).__name__] += 1
            raise
        TALLY.wire[key][response.status_code] += 1
        return response

    requests.adapters.HTTPAdapter.send = send
    try:
        yield
    finally:
        requests.adapters.HTTPAdapter.send = original


@pytest.fixture(autouse=True)
def tally_auth_mode(request):
    callspec = getattr(request.node, "callspec", None)
    TALLY.mode = callspec.params.get("auth_mode") if callspec else None
    start = time.monotonic()
    try:
        yield
    finally:
        if TALLY.mode:
            TALLY.seconds[TALLY.mode] += time.monotonic() - start
        TALLY.mode = None


class BearerToken(requests.auth.AuthBase):
    """`Authorization: Bearer` with an access token of a new service account (Organization Owner,
    as the bootstrap API key the Digest mode uses), renewed five minutes before it expires (the
    lifetime is the token response's `expires_in`), so a long run never sends an expired one."""

    def __init__(self, server) -> None:
        account = create_service_account(server, roles=("ORG_OWNER",))
        self.token_url = f"{server.root}/api/oauth/token"
        self.client = (account["clientId"], account["secrets"][0]["secret"])
        self.token: str | None = None
        self.renew_at = 0.0

    def current(self) -> str:
        if self.token is None or time.monotonic() >= self.renew_at:
            r = requests.post(
                self.token_url,
                auth=self.client,
                data={"grant_type": "client_credentials"},
                headers={"Accept": "application/json"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            body = r.json()
            self.token = remember_secret(body["access_token"])
            self.renew_at = time.monotonic() + body["expires_in"] - min(300, body["expires_in"] / 2)
            TALLY.tokens_issued[TALLY.key] += 1
        return self.token

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self.current()}"
        return r


class AtlasFixtures:
    """Real resources for the path parameters, created on the server under test."""

    def __init__(self, server) -> None:
        self.server = server
        self.projects: dict[str, str] = {}
        self.counter = itertools.count()
        # Complete the Digest handshake once up front, so that the fixtures' requests carry
        # credentials from the start. (A challenge to a request whose body was not read now says
        # `Connection: close`; test_connection.py covers that.)
        assert server.call("GET", "/groups").status_code == 200

    def project_for(self, op: str) -> str:
        """A project of the operation's own, with `user389` (MANAGED, `$external`) and one cert."""
        if op not in self.projects:
            self.projects[op] = self.new_project()
        return self.projects[op]

    def new_project(self) -> str:
        """A fresh project (random name) holding `user389` with one certificate."""
        gid = self.server.create_project()
        self.server.create_user(gid, USERNAME)
        self.server.create_cert(gid, USERNAME)
        return gid

    def throwaway_user(self, gid: str) -> str:
        name = f"doomed{next(self.counter)}"
        self.server.create_user(gid, name)
        return name

    def prepare(self, case, *, use_real_path: bool) -> None:
        op = hooks.operation_id(case)
        meta = case.meta
        path_is_positive = meta is None or not meta.is_negative_at(ParameterLocation.PATH)
        body_is_positive = meta is None or not meta.is_negative_at(ParameterLocation.BODY)
        params = case.path_parameters
        if params and path_is_positive and use_real_path:
            gid = self.new_project() if op == "deleteGroup" else self.project_for(op)
            if "groupId" in params:
                params["groupId"] = gid
            if "databaseName" in params:
                params["databaseName"] = EXTERNAL
            if "username" in params:
                params["username"] = self.throwaway_user(gid) if op == "deleteGroupDatabaseUser" else USERNAME
        # A schema-valid body naming another organization or project can only be refused
        # (ORG_NOT_FOUND, GROUP_MISMATCH): point positive bodies at the real ones instead.
        body = case.body
        if isinstance(body, dict) and body_is_positive:
            if op == "createGroup" and isinstance(body.get("orgId"), str):
                body["orgId"] = self.server.org_id
            if op in ("createGroupDatabaseUser", "updateGroupDatabaseUser") and isinstance(body.get("groupId"), str):
                body["groupId"] = (params or {}).get("groupId", body["groupId"])
            if op == "updateGroupDatabaseUser" and use_real_path:
                # PATCH cannot rename a user or move it to another database (409 by design);
                # aim at the user in the path so that the update itself is exercised.
                if isinstance(body.get("username"), str):
                    body["username"] = params["username"]
                if isinstance(body.get("databaseName"), str):
                    body["databaseName"] = params["databaseName"]


def keeps_generated_path(case) -> bool:
    """About one case in four keeps its generated path values (to exercise not-found paths).

    Decided by a hash of the generated request, so the choice is the same on every run and for
    every replay of a case while Hypothesis shrinks it. (`schema.given()` cannot supply the coin:
    it does not combine with the examples phase.)
    """
    if not case.path_parameters:
        return False
    generated = [case.path_parameters, case.query, case.body if isinstance(case.body, (dict, list, str)) else None]
    digest = zlib.crc32(json.dumps(generated, sort_keys=True, default=repr).encode())
    return digest % 4 == 0


BEARER: "weakref.WeakKeyDictionary[object, tuple[requests.Session, BearerToken]]" = weakref.WeakKeyDictionary()


def call_kwargs(server) -> dict:
    """The transport arguments for the authentication mode of the running test (Digest outside
    one): the bootstrap API key's Digest session, or a plain session with the token of a
    service account created on this server for the purpose."""
    if TALLY.mode == "bearer":
        if server not in BEARER:
            BEARER[server] = (requests.Session(), BearerToken(server))
        session, auth = BEARER[server]
    else:
        session, auth = server.session, server.auth
    # `auth` makes the credentials explicit to schemathesis, so its ignored_auth check can strip
    # them (and the session) and expect 401 without them and with wrong ones.
    return {
        "base_url": server.root,
        "session": session,
        "auth": auth,
        "headers": {"Accept": V2},
        "timeout": 60,
    }


@pytest.fixture(scope="module")
def atlas(server):
    """The fixtures of each authentication mode: projects of its own, so that one mode's
    changes (user security settings, deleted users) cannot shape the other's cases."""
    made: dict[str, AtlasFixtures] = {}

    def for_mode(auth_mode: str) -> AtlasFixtures:
        if auth_mode not in made:
            made[auth_mode] = AtlasFixtures(server)
        return made[auth_mode]

    return for_mode


def _conformance_test(auth_mode: str):
    """The conformance test for one authentication mode (a function of its own per mode, since
    Hypothesis's settings, and so the number of examples, are fixed per test function)."""

    @pytest.mark.parametrize("auth_mode", [auth_mode])
    @SCHEMA.parametrize()
    @settings(max_examples=EXAMPLES[auth_mode], **HYPOTHESIS)
    def test_conforms_to_atlas_spec(case, atlas, server, auth_mode):
        atlas(auth_mode).prepare(case, use_real_path=not keeps_generated_path(case))
        case.call_and_validate(additional_checks=[hooks.atlas_compensating_checks], **call_kwargs(server))

    return test_conforms_to_atlas_spec


test_conforms_to_atlas_spec = _conformance_test("digest")
test_conforms_to_atlas_spec_bearer = _conformance_test("bearer")


@pytest.mark.parametrize("auth_mode", AUTH_MODES)
def test_stateful_inferred_links(tmp_path, auth_mode):
    """Scenarios along the links schemathesis infers from the schemas (e.g. `Group.id` from
    `GET /groups` into every `{groupId}`), which adds the use-after-free and
    resource-availability checks.

    Each scenario gets a server of its own, so that a scenario replays identically while
    Hypothesis shrinks it (on a shared server, `GET /groups` would list earlier scenarios'
    projects and the replay would draw differently).

    With `derandomize`, the source of the `Scenario` class seeds Hypothesis: any edit to it
    changes which scenarios run. The authentication mode is therefore chosen outside it, by
    `call_kwargs` (from the running test's `auth_mode`), and both modes draw the same scenarios.
    """

    class Scenario(SCHEMA.as_state_machine()):
        def setup(self):
            self.running = _server(tmp_path, "--key-algorithm", "ecdsa-p256", "--key-pool-size", "2")
            self.server = next(self.running)
            self.atlas = AtlasFixtures(self.server)
            # Something real to discover: a project holding user389 with a certificate.
            self.atlas.new_project()

        def teardown(self):
            next(self.running, None)  # stops the server and checks it exited cleanly

        def before_call(self, case):
            self.atlas.prepare(case, use_real_path=False)

        def get_call_kwargs(self, case):
            return call_kwargs(self.server)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            super().validate_response(response, case, additional_checks=[hooks.atlas_compensating_checks], **kwargs)

    Scenario.run(
        settings=settings(max_examples=SCENARIOS[auth_mode], stateful_step_count=STATEFUL_STEPS, **HYPOTHESIS)
    )


class DivergenceNotMatched(Exception):
    pass


def test_nul_character_divergence_matches_a_body_with_a_nul(server):
    """The documented NUL refusal (docs/COMPATIBILITY.md; DIVERGENCES key `nul-character`) must
    be recognised for a body that really holds a NUL. (It was not: the check searched
    `json.dumps` output, where a NUL is always escaped; the long run found it.)"""
    gid = server.create_project()
    body = {
        "databaseName": EXTERNAL,
        "groupId": gid,
        "roles": [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}],
        "username": "nul\x00user",
        "x509Type": "MANAGED",
    }
    response = server.call("POST", f"/groups/{gid}/databaseUsers", json=body)
    # What dbcerts documents for it: 400 INVALID_JSON.
    assert response.status_code == 400, response.text
    assert response.json()["errorCode"] == "INVALID_JSON", response.text
    (nul,) = [d for d in hooks.DIVERGENCES if d.key == "nul-character"]
    case = type("GeneratedCase", (), {"body": body})()
    if not nul.applies(case, response, None):
        raise DivergenceNotMatched(f"nul-character does not match {body!r} answered {response.text}")


def test_request_totals(request, server, capsys):
    """Runs last (pytest keeps this module's order): the totals of the whole module. No 5xx and
    no request without a response anywhere, the shared server still running, and, in a long run,
    at least MIN_REQUESTS_LONG_RUN generated requests per authentication mode."""
    modes = [
        m
        for m in AUTH_MODES
        if any(getattr(i, "callspec", None) and i.callspec.params.get("auth_mode") == m for i in request.session.items)
    ]
    report = {
        "scale": SCALE,
        "long_run": LONG_RUN,
        "backend": os.environ.get("DBCERTS_TEST_BACKEND", "sqlite"),
        "fuzz_examples_per_operation": {m: EXAMPLES[m] for m in modes},
        "stateful_scenarios": {m: SCENARIOS[m] for m in modes},
        "stateful_steps": STATEFUL_STEPS,
        "modes": {m: TALLY.summary(m) for m in modes},
        "other": {
            "wire_by_status": dict(sorted(TALLY.wire["other"].items())),
            "wire_errors": dict(TALLY.wire_errors["other"]),
        },
    }
    lines = [f"schemathesis totals (scale {SCALE}{', long run' if LONG_RUN else ''}):"]
    for m in modes:
        s = report["modes"][m]
        lines.append(
            f"  {m}: {s['generated_requests']} generated requests in {s['test_seconds']} s "
            f"{s['generated_by_status_class']}; {s['wire_requests']} on the wire {s['wire_by_status_class']}"
            + (f"; errors {s['wire_errors']}" if s["wire_errors"] else "")
        )
        for op, n in s["generated_by_operation"].items():
            lines.append(f"    {op}: {n} {s['generated_by_operation_and_status'][op]}")
    lines.append(f"  other (fixtures): on the wire {report['other']['wire_by_status']}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    if REPORT_PATH:
        path = pathlib.Path(REPORT_PATH)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")

    server_errors = {
        key: {status: n for status, n in counts.items() if status >= 500}
        for key, counts in [*(("generated " + m, collections.Counter(report["modes"][m]["generated_by_status"])) for m in modes),
                            *(("wire " + k, c) for k, c in TALLY.wire.items())]
    }
    assert not any(server_errors.values()), server_errors
    assert not any(TALLY.wire_errors.values()), dict(TALLY.wire_errors)
    assert server.proc.poll() is None, "the shared server exited"
    if LONG_RUN:
        short = {m: report["modes"][m]["generated_requests"] for m in modes
                 if report["modes"][m]["generated_requests"] < MIN_REQUESTS_LONG_RUN}
        assert not short, f"fewer than {MIN_REQUESTS_LONG_RUN} generated requests: {short}; raise the scale"
