"""Customer CA bundles built to hurt: huge, numerous, truncated, binary, nested. Each is refused
with a clear Atlas error and the project's stored customer CA stays exactly as it was. (The
ordinary wrong bundles, a leaf, no keyCertSign, expired or not yet valid, a private key, are in
test_errors.py.)"""

from __future__ import annotations

import base64
import os

import pytest

from _certs_util import make_cert
# ca_pem and ca_project (a project whose customer CA is ca_pem) are test_errors.py's fixtures.
from test_errors import _user_security, assert_atlas_error, ca_pem, ca_project  # noqa: F401

MAX_CERTS = 100  # docs/COMPATIBILITY.md: at most 100 certificates / 256 KiB per bundle


@pytest.fixture(scope="module")
def many_cas() -> list[str]:
    return [make_cert(f"CA {i}") for i in range(1000)]


def _refused(server, gid, ca_pem, cas: str, status: int = 400, code: str = "VALIDATION_ERROR") -> dict:
    before = _user_security(server, gid)
    assert before["customerX509"] == {"cas": ca_pem}
    r = server.call("PATCH", f"/groups/{gid}/userSecurity", json={"customerX509": {"cas": cas}})
    body = assert_atlas_error(r, status, code)
    assert _user_security(server, gid) == before
    return body


def test_a_thousand_certificate_bundle_is_refused(server, ca_project, ca_pem, many_cas):
    body = _refused(server, ca_project, ca_pem, "".join(many_cas))
    assert body["parameters"][0].startswith("customerX509.cas: "), body
    # 1,000 certificates of ~600 bytes are over the size limit before the count is reached.
    assert body["parameters"][0] == "customerX509.cas: the CA bundle is larger than 262144 bytes", body


def test_the_largest_bundle_allowed_is_accepted_and_one_more_is_not(server, many_cas):
    gid = server.create_project()
    bundle = "".join(many_cas[:MAX_CERTS])
    r = server.call("PATCH", f"/groups/{gid}/userSecurity", json={"customerX509": {"cas": bundle}})
    assert r.status_code == 202, r.text
    over = bundle + many_cas[MAX_CERTS]
    r = server.call("PATCH", f"/groups/{gid}/userSecurity", json={"customerX509": {"cas": over}})
    assert_atlas_error(r, 400, "VALIDATION_ERROR")
    assert _user_security(server, gid)["customerX509"] == {"cas": bundle}


def test_a_ten_megabyte_bundle_is_413(server, ca_project, ca_pem):
    """Larger than the request body limit (1 MiB): refused before it is parsed, as 413."""
    cas = ca_pem * (10 * 1024 * 1024 // len(ca_pem))
    body = _refused(server, ca_project, ca_pem, cas, status=413, code="VALIDATION_ERROR")
    assert body["detail"] == (
        "The request content produced the validation error: the request body is larger than 1048576 bytes."
    )


@pytest.mark.parametrize(
    "name",
    ["near-limit-garbage", "near-limit-one-line", "random-base64-cert", "begin-without-end",
     "nested-begin", "binary-as-text", "end-before-begin", "header-only", "many-empty-blocks",
     "ca-then-garbage-block", "ca-then-truncated-ca"],
)
def test_malformed_bundle_is_400(server, ca_project, ca_pem, name):
    rnd = os.urandom(600)
    second_ca = make_cert("Hostile Test Second CA")
    cases = {
        "near-limit-garbage": "garbage " * 110_000,  # ~880 KB, under the body limit
        "near-limit-one-line": "-----BEGIN CERTIFICATE-----\n" + "A" * 900_000 + "\n-----END CERTIFICATE-----\n",
        "random-base64-cert": "-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(rnd).decode()
        + "-----END CERTIFICATE-----\n",
        "begin-without-end": ca_pem.rsplit("-----END", 1)[0],
        "nested-begin": "-----BEGIN CERTIFICATE-----\n" + ca_pem + "-----END CERTIFICATE-----\n",
        # (NUL aside: a JSON string holding one is INVALID_JSON before any CA rule, test_errors.py)
        "binary-as-text": rnd.replace(b"\x00", b"\x01").decode("latin-1"),
        "end-before-begin": "-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n",
        "header-only": "-----BEGIN CERTIFICATE-----\n",
        "many-empty-blocks": "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n" * 5000,
        "ca-then-garbage-block": ca_pem + "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        # A good CA and a second one cut off before its END line (found by fuzzing: the PEM
        # reader skipped the unclosed block, and the cut text was accepted and stored).
        "ca-then-truncated-ca": ca_pem + second_ca[: len(second_ca) // 2],
    }
    body = _refused(server, ca_project, ca_pem, cases[name])
    assert body["parameters"][0].startswith("customerX509.cas: "), body
    # The message says what is wrong in a line, without echoing the input back.
    assert len(body["detail"]) < 400, body["detail"]
