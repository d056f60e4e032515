"""No caller gains a role it does not hold: the privilege escalation a hostile review found,
replayed step by step against the real binary.

The chain: a key that is only Project Owner of P2 mints a secret for an Organization Owner
service account that was invited to P2, exchanges it for a token, and with the token creates an
`ORG_OWNER` API key. The same project paths let it restrict, rename or unassign that account
and rewrite the bootstrap key's description. Each step must now be refused with 403
`ACCESS_FORBIDDEN` in Atlas's format, with nothing changed; the property test over every
credential operation and role combination is `crates/dbcerts-server/tests/escalation.rs`.
"""

from __future__ import annotations

import uuid

import pytest
import requests
from requests.auth import HTTPDigestAuth

from conftest import SA_V, V2, create_service_account, get_token, remember_secret


def forbidden(r: requests.Response) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["errorCode"] == "ACCESS_FORBIDDEN", body
    assert set(body) == {"detail", "error", "errorCode", "parameters", "reason"}, body
    assert "secret" not in body and "privateKey" not in body


class Chain:
    def __init__(self, server):
        self.server = server
        self.p2 = server.create_project()
        # The attacker: an API key with Project Owner on P2 and nothing else.
        r = server.call("POST", f"/groups/{self.p2}/apiKeys",
                        json={"desc": "project owner of P2", "roles": ["GROUP_OWNER"]})
        assert r.status_code == 200, r.text
        key = r.json()
        self.attacker_id = key["id"]
        self.attacker = requests.Session()
        self.attacker.auth = HTTPDigestAuth(key["publicKey"], remember_secret(key["privateKey"]))
        # The victim: an Organization Owner service account, invited to P2.
        self.victim = create_service_account(server, roles=["ORG_OWNER"])
        self.victim_id = self.victim["clientId"]
        self.victim_secret = self.victim["secrets"][0]["secret"]
        r = server.call("POST", f"/groups/{self.p2}/serviceAccounts/{self.victim_id}:invite",
                        accept=SA_V, json={"roles": ["GROUP_READ_ONLY"]})
        assert r.status_code == 200, r.text
        keys = server.call("GET", f"/orgs/{server.org_id}/apiKeys").json()["results"]
        [self.bootstrap] = [k for k in keys if k["publicKey"] == server.public_key]

    def as_attacker(self, method: str, path: str, accept: str = V2, **kw) -> requests.Response:
        headers = {"Accept": accept, **kw.pop("headers", {})}
        return self.attacker.request(method, self.server.url(path), headers=headers, timeout=60, **kw)

    def victim_state(self) -> dict:
        """What the owner sees of the victim: account, secrets, access list, projects."""
        base = f"/orgs/{self.server.org_id}/serviceAccounts/{self.victim_id}"
        out = {}
        for what, path in (("account", base), ("access", f"{base}/accessList"), ("groups", f"{base}/groups")):
            r = self.server.call("GET", path, accept=SA_V)
            assert r.status_code == 200, r.text
            out[what] = r.json()
        return out


@pytest.fixture(scope="module")
def chain(server):
    return Chain(server)


def test_the_reported_chain_is_refused_at_every_step(server, chain):
    before = chain.victim_state()
    # 1. Mint a secret for the Organization Owner account through the P2 path.
    r = chain.as_attacker("POST", f"/groups/{chain.p2}/serviceAccounts/{chain.victim_id}/secrets",
                          accept=SA_V, json={"secretExpiresAfterHours": 8})
    forbidden(r)
    assert chain.victim_state() == before
    # 2. No secret came back, so there is nothing to exchange; the account's secrets are the
    #    one the owner made, and a guess is refused by the token endpoint.
    assert [s["id"] for s in before["account"]["secrets"]] == [chain.victim["secrets"][0]["id"]]
    r = requests.post(f"{server.root}/api/oauth/token", auth=(chain.victim_id, "mdb_sa_sk_" + "A" * 40),
                      data={"grant_type": "client_credentials"}, timeout=30)
    assert r.status_code == 401, r.text
    # 3. The attacker's own key cannot create an ORG_OWNER key, nor see other projects.
    r = chain.as_attacker("POST", f"/orgs/{server.org_id}/apiKeys",
                          json={"desc": "escalated", "roles": ["ORG_OWNER"]})
    assert r.status_code == 401 and r.json()["errorCode"] == "USER_UNAUTHORIZED", r.text
    other = server.create_project()
    listed = chain.as_attacker("GET", "/groups").json()["results"]
    assert [g["id"] for g in listed] == [chain.p2]
    assert other not in str(listed)
    # The victim still works: its own secret gets a token that reaches the whole organization.
    token = get_token(server, chain.victim_id, chain.victim_secret)
    r = requests.get(server.url("/groups"), headers={"Authorization": f"Bearer {token}", "Accept": V2}, timeout=30)
    assert r.status_code == 200 and other in r.text, r.text


@pytest.mark.parametrize("method, tail, body", [
    ("POST", "/accessList", [{"ipAddress": "192.0.2.1"}]),
    ("DELETE", "/secrets/{secret}", None),
    ("PATCH", "", {"name": "renamed", "description": "renamed"}),
    ("PATCH", "", {"roles": ["GROUP_OWNER"]}),
    ("DELETE", "", None),
])
def test_the_project_path_cannot_restrict_rename_or_unassign_the_org_owner(chain, method, tail, body):
    before = chain.victim_state()
    tail = tail.format(secret=chain.victim["secrets"][0]["id"])
    path = f"/groups/{chain.p2}/serviceAccounts/{chain.victim_id}{tail}"
    forbidden(chain.as_attacker(method, path, accept=SA_V, json=body))
    assert chain.victim_state() == before


@pytest.mark.parametrize("method, body", [
    ("PATCH", {"desc": "rewritten by a project owner"}),
    ("PATCH", {"roles": ["GROUP_READ_ONLY"]}),
    ("POST", [{"roles": ["GROUP_READ_ONLY"]}]),
    ("DELETE", None),
])
def test_the_project_path_cannot_touch_the_bootstrap_key(server, chain, method, body):
    def bootstrap_state():
        key = server.call("GET", f"/orgs/{server.org_id}/apiKeys/{chain.bootstrap['id']}").json()
        return key["desc"], key["roles"]

    before = bootstrap_state()
    forbidden(chain.as_attacker(method, f"/groups/{chain.p2}/apiKeys/{chain.bootstrap['id']}", json=body))
    assert bootstrap_state() == before


def test_a_project_owner_still_manages_what_is_confined_to_its_project(server, chain):
    """The rule refuses only what is beyond the caller: an account made in P2 with P2 roles is
    the project owner's to manage, secrets included."""
    r = chain.as_attacker("POST", f"/groups/{chain.p2}/serviceAccounts", accept=SA_V,
                          json={"name": f"ci-{uuid.uuid4().hex[:6]}", "description": "ci",
                                "roles": ["GROUP_OWNER"], "secretExpiresAfterHours": 8})
    assert r.status_code == 201, r.text
    remember_secret(r.json()["secrets"][0]["secret"])
    client_id = r.json()["clientId"]
    r = chain.as_attacker("POST", f"/groups/{chain.p2}/serviceAccounts/{client_id}/secrets",
                          accept=SA_V, json={"secretExpiresAfterHours": 8})
    assert r.status_code == 201, r.text
    secret = remember_secret(r.json()["secret"])
    token = get_token(server, client_id, secret)
    r = requests.get(server.url("/groups"), headers={"Authorization": f"Bearer {token}", "Accept": V2}, timeout=30)
    assert [g["id"] for g in r.json()["results"]] == [chain.p2], r.text
    # Promoting it beyond the project is refused, and leaves its roles as they were.
    r = chain.as_attacker("POST", f"/groups/{chain.p2}/serviceAccounts/{client_id}:invite", accept=SA_V,
                          json={"roles": ["GROUP_OWNER"]})
    assert r.status_code == 401, r.text
    r = server.call("GET", f"/orgs/{server.org_id}/serviceAccounts/{client_id}", accept=SA_V)
    assert r.json()["roles"] == ["ORG_MEMBER"], r.text
