"""Property-based conformance: schemathesis against MongoDB's own Atlas OpenAPI spec.

Every operation of `shared/spec/atlas-x509-subset.yaml` (unmodified) is exercised against the real
`dbcerts` binary, over HTTP Digest, with schemathesis's examples, coverage and fuzzing phases,
positive and negative data, and every built-in check: no 5xx, status codes, content types,
response schemas and headers, positive/negative data acceptance, enforced authentication,
unsupported methods, and the rest.

Path parameters point at real resources most of the time: a project of each operation's own
holding the MANAGED x.509 user `user389` on `$external` (with one certificate), a fresh
throwaway project for every `deleteGroup` case and a fresh throwaway user for every
`deleteGroupDatabaseUser` case, so no operation can take another's fixtures away. About one
positive case in four keeps its generated path values, to exercise the not-found paths; negative
path values are always kept.

Where observed or documented Atlas deliberately differs from the spec,
`_schemathesis_hooks.DIVERGENCES` drops exactly that failure (one check, named operations, a
precise condition), each with the reason docs/COMPATIBILITY.md quotes, and
`atlas_compensating_checks` validates in Atlas's shape what the dropped failure would otherwise
leave unchecked. Nothing else is switched off.

A second test follows the links schemathesis infers between operations (the spec declares no
OpenAPI links) as short stateful scenarios, with the same checks plus the stateful ones.
"""

from __future__ import annotations

import itertools
import json
import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

import _schemathesis_hooks as hooks
from conftest import V2, _server

USERNAME = "user389"
EXTERNAL = "$external"

# Bounded for a 2-core CI runner: the examples and coverage phases add their own cases (a fixed
# number per operation, from the spec); these bound the random part.
FUZZ_EXAMPLES = 50
STATEFUL_SCENARIOS = 25
STATEFUL_STEPS = 8
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
SCHEMA = schemathesis.openapi.from_path(hooks.SPEC_PATH, config=schemathesis.Config.from_dict({"seed": 20230101}))
SCHEMA.hook(hooks.filter_failure)


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


def call_kwargs(server) -> dict:
    # `auth` makes the credentials explicit to schemathesis, so its ignored_auth check can strip
    # them (and the session) and expect 401 without them and with wrong ones.
    return {
        "base_url": server.root,
        "session": server.session,
        "auth": server.auth,
        "headers": {"Accept": V2},
        "timeout": 60,
    }


@pytest.fixture(scope="module")
def atlas(server):
    return AtlasFixtures(server)


@SCHEMA.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, **HYPOTHESIS)
def test_conforms_to_atlas_spec(case, atlas, server):
    atlas.prepare(case, use_real_path=not keeps_generated_path(case))
    case.call_and_validate(additional_checks=[hooks.atlas_compensating_checks], **call_kwargs(server))


def test_stateful_inferred_links(tmp_path):
    """Scenarios along the links schemathesis infers from the schemas (e.g. `Group.id` from
    `GET /groups` into every `{groupId}`), which adds the use-after-free and
    resource-availability checks. Links out of createGroup are inferred for its documented 200,
    so they never fire on Atlas's 201.

    Each scenario gets a server of its own, so that a scenario replays identically while
    Hypothesis shrinks it (on a shared server, `GET /groups` would list earlier scenarios'
    projects and the replay would draw differently).
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

    Scenario.run(settings=settings(max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS, **HYPOTHESIS))
