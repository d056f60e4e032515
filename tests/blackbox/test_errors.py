"""Black-box tests of every error the server emits, in Atlas's wire format.

Every case triggers the error for real against the running binary and checks the whole Atlas
error contract with `assert_atlas_error`: status, `Content-Type: application/json`, an
`X-Error-Code` header equal to `errorCode`, exactly the keys {detail, error, errorCode, parameters,
reason} in alphabetical order, `error` == status and `reason` == the HTTP reason phrase. Where a
rejected request could have had a side effect, the test also checks that it did not.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from urllib.parse import quote

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from requests.auth import HTTPDigestAuth

from _certs_util import add_months, make_cert

V2 = "application/vnd.atlas.2023-01-01+json"
V2_CONTENT_TYPE = "application/vnd.atlas.2023-01-01+json;charset=utf-8"
ROLES = [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}]
UNKNOWN_GROUP = "111111111111111111111111"

# Reason phrases as the server's HTTP stack names them (RFC 9110 / 7231 wording).
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Payload Too Large",
}

ERROR_KEYS = ["detail", "error", "errorCode", "parameters", "reason"]


def assert_atlas_error(resp, status, code, params=None, detail=None):
    """Checks that `resp` is an Atlas `ApiError` with this status and code, and returns the body.

    `params` (when given) must equal `parameters` exactly; `detail` (when given) must equal
    `detail` exactly.
    """
    assert resp.status_code < 500, f"5xx: {resp.status_code} {resp.text}"
    assert resp.status_code == status, f"expected {status} {code}, got {resp.status_code}: {resp.text}"
    assert resp.headers.get("Content-Type") == "application/json", resp.headers
    assert resp.headers.get("X-Error-Code") == code, resp.headers
    body = resp.json()
    assert isinstance(body, dict), resp.text
    assert list(body.keys()) == ERROR_KEYS, resp.text  # exactly these keys, alphabetical
    assert body["error"] == status
    assert body["errorCode"] == code
    assert body["reason"] == REASONS[status]
    assert isinstance(body["detail"], str) and body["detail"], resp.text
    assert isinstance(body["parameters"], list), resp.text
    if params is not None:
        assert body["parameters"] == params, resp.text
    if detail is not None:
        assert body["detail"] == detail, resp.text
    return body


def uname(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def user_path(gid: str, db: str, username: str) -> str:
    return f"/groups/{gid}/databaseUsers/{db}/{quote(username, safe='')}"


def certs_path(gid: str, username: str) -> str:
    return f"/groups/{gid}/databaseUsers/{quote(username, safe='')}/certs"


def user_body(gid: str, username: str, /, **fields) -> dict:
    body = {
        "databaseName": "$external",
        "username": username,
        "x509Type": "MANAGED",
        "roles": ROLES,
        "groupId": gid,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def assert_no_user(server, gid: str, db: str, username: str) -> None:
    r = server.call("GET", user_path(gid, db, username))
    assert_atlas_error(r, 404, "USERNAME_NOT_FOUND", [username])


def cert_count(server, gid: str, username: str) -> int:
    r = server.call("GET", certs_path(gid, username))
    assert r.status_code == 200, r.text
    return r.json()["totalCount"]


@pytest.fixture(scope="module")
def gid(server) -> str:
    return server.create_project()


@pytest.fixture()
def managed(server, gid) -> str:
    """A fresh MANAGED user of the module's project."""
    name = uname("m")
    server.create_user(gid, name)
    return name


# ---------------------------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------------------------

BAD_CERT_BODIES = [
    pytest.param("{", 400, "MALFORMED_JSON", [], "Received JSON is malformed.", id="truncated"),
    pytest.param(
        '{"monthsUntilExpiration":3} x',
        400,
        "MALFORMED_JSON",
        [],
        "Received JSON is malformed.",
        id="trailing-garbage",
    ),
    pytest.param(
        "[]", 400, "INVALID_JSON", [], "Received JSON does not match expected format.", id="array"
    ),
    pytest.param(
        '{"monthsUntilExpiration":"3"}',
        400,
        "INVALID_JSON_ATTRIBUTE",
        ["monthsUntilExpiration"],
        "Received JSON for the monthsUntilExpiration attribute does not match expected format.",
        id="string-months",
    ),
    pytest.param(
        '{"monthsUntilExpiration":3.5}',
        400,
        "INVALID_JSON_ATTRIBUTE",
        ["monthsUntilExpiration"],
        "Received JSON for the monthsUntilExpiration attribute does not match expected format.",
        id="fractional-months",
    ),
    pytest.param(
        '{"monthsUntilExpiration":3,"foo":1}',
        400,
        "INVALID_ATTRIBUTE",
        ["foo"],
        "Invalid attribute foo specified.",
        id="unknown-field",
    ),
]


@pytest.mark.parametrize("body,status,code,params,detail", BAD_CERT_BODIES)
def test_bad_cert_request_body(server, gid, managed, body, status, code, params, detail):
    r = server.call(
        "POST",
        certs_path(gid, managed),
        data=body.encode(),
        headers={"Content-Type": V2},
    )
    assert_atlas_error(r, status, code, params, detail)
    assert cert_count(server, gid, managed) == 0, "a rejected request issued a certificate"


# serde's derived struct visitors also accept a JSON array holding one element per field, so an
# array of the right length slips past the "body must be an object" rule.
ARRAY_BODIES = [
    pytest.param("POST", "/groups/{g}/databaseUsers/{u}/certs", [3, None, None, None, None, None, None],
                 id="create-cert"),
    pytest.param("POST", "/groups", ["arrayproj-{n}", "{org}", None, None, None, None, None, None],
                 id="create-project"),
    pytest.param("PATCH", "/groups/{g}/userSecurity", [None, None, None], id="patch-user-security"),
]


@pytest.mark.parametrize("method,path,body", ARRAY_BODIES)
def test_array_body_with_one_element_per_field_is_invalid_json(server, gid, managed, method, path, body):
    n = uuid.uuid4().hex[:8]
    body = [b.format(n=n, org=server.org_id) if isinstance(b, str) else b for b in body]
    r = server.call(method, path.format(g=gid, u=managed), json=body)
    assert_atlas_error(r, 400, "INVALID_JSON", [], "Received JSON does not match expected format.")


def test_short_array_body_is_invalid_json(server, gid, managed):
    r = server.call("POST", certs_path(gid, managed), json=[3])
    assert_atlas_error(r, 400, "INVALID_JSON", [])
    assert cert_count(server, gid, managed) == 0


def test_deeply_nested_body_is_a_client_error(server, gid, managed):
    r = server.call("POST", certs_path(gid, managed), data=b"[" * 5000 + b"]" * 5000,
                    headers={"Content-Type": "application/json"})
    assert_atlas_error(r, 400, r.headers.get("X-Error-Code"))
    assert r.headers["X-Error-Code"] in {"MALFORMED_JSON", "INVALID_JSON", "INVALID_JSON_ATTRIBUTE"}


def test_invalid_utf8_body_is_malformed(server):
    name = uname("p")
    body = b'{"name":"' + name.encode() + b'\xff","orgId":"' + server.org_id.encode() + b'"}'
    r = server.call("POST", "/groups", data=body, headers={"Content-Type": "application/json"})
    assert_atlas_error(r, 400, "MALFORMED_JSON", [])


def test_malformed_json_on_create_project(server):
    name = uname("p")
    r = server.call(
        "POST", "/groups", data=('{"name":"%s","orgId":"%s"' % (name, server.org_id)).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert_atlas_error(r, 400, "MALFORMED_JSON", [])
    names = [p["name"] for p in server.call("GET", "/groups", params={"itemsPerPage": 500}).json()["results"]]
    assert name not in names


def test_empty_body_on_create_project_is_malformed(server):
    r = server.call("POST", "/groups", data=b"", headers={"Content-Type": "application/json"})
    assert_atlas_error(r, 400, "MALFORMED_JSON", [])


def test_invalid_json_on_create_user(server, gid):
    r = server.call("POST", f"/groups/{gid}/databaseUsers", data=b"[]",
                    headers={"Content-Type": "application/json"})
    assert_atlas_error(r, 400, "INVALID_JSON", [])


def test_unknown_field_on_create_user(server, gid):
    name = uname()
    r = server.call("POST", f"/groups/{gid}/databaseUsers", json=user_body(gid, name, nickname="x"))
    assert_atlas_error(r, 400, "INVALID_ATTRIBUTE", ["nickname"], "Invalid attribute nickname specified.")
    assert_no_user(server, gid, "$external", name)


def test_unknown_nested_field_in_customer_x509(server):
    gid = server.create_project()
    r = server.call(
        "PATCH", f"/groups/{gid}/userSecurity", json={"customerX509": {"cas": "x", "foo": 1}}
    )
    assert_atlas_error(r, 400, "INVALID_ATTRIBUTE", ["customerX509.foo"])
    assert server.call("GET", f"/groups/{gid}/userSecurity").json()["customerX509"] == {}


def test_wrong_type_nested_field_in_customer_x509(server):
    gid = server.create_project()
    r = server.call("PATCH", f"/groups/{gid}/userSecurity", json={"customerX509": {"cas": 5}})
    assert_atlas_error(r, 400, "INVALID_JSON_ATTRIBUTE", ["customerX509.cas"])


@pytest.mark.parametrize(
    "drop,param",
    [("name", "name"), ("orgId", "orgId")],
)
def test_missing_attribute_on_create_project(server, drop, param):
    body = {"name": uname("p"), "orgId": server.org_id}
    del body[drop]
    r = server.call("POST", "/groups", json=body)
    assert_atlas_error(
        r, 400, "MISSING_ATTRIBUTE", [param], f"The required attribute {param} was not specified."
    )


@pytest.mark.parametrize(
    "change,param",
    [
        ({"username": None}, "username"),
        ({"roles": None}, "roles"),
        ({"roles": [{"databaseName": "admin"}]}, "roles.roleName"),
        ({"roles": [{"roleName": "read"}]}, "roles.databaseName"),
        # A SCRAM user needs a password.
        ({"x509Type": "NONE", "databaseName": "admin"}, "password"),
    ],
    ids=["username", "roles", "roles.roleName", "roles.databaseName", "scram-password"],
)
def test_missing_attribute_on_create_user(server, gid, change, param):
    name = uname()
    body = user_body(gid, name, **change)
    r = server.call("POST", f"/groups/{gid}/databaseUsers", json=body)
    assert_atlas_error(
        r, 400, "MISSING_ATTRIBUTE", [param], f"The required attribute {param} was not specified."
    )
    for db in ("$external", "admin"):
        assert_no_user(server, gid, db, name)


@pytest.mark.parametrize(
    "field,value",
    [("x509Type", "BOGUS"), ("awsIAMType", "GROUP"), ("ldapAuthType", "ROLE"), ("oidcAuthType", "bogus")],
)
def test_invalid_enum_value(server, gid, field, value):
    name = uname()
    r = server.call("POST", f"/groups/{gid}/databaseUsers", json=user_body(gid, name, **{field: value}))
    assert_atlas_error(
        r, 400, "INVALID_ENUM_VALUE", [value], f"An invalid enumeration value {value} was specified."
    )
    assert_no_user(server, gid, "$external", name)


# ---------------------------------------------------------------------------------------------
# Query parameters and monthsUntilExpiration ranges
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query,param",
    [
        ({"itemsPerPage": "0"}, "itemsPerPage"),
        ({"itemsPerPage": "501"}, "itemsPerPage"),
        ({"itemsPerPage": "-1"}, "itemsPerPage"),
        ({"itemsPerPage": "abc"}, "itemsPerPage"),
        ({"pageNum": "0"}, "pageNum"),
        ({"pretty": "yes"}, "pretty"),
        ({"envelope": "1"}, "envelope"),
        ({"includeCount": "maybe"}, "includeCount"),
        ("pageNum=1&pageNum=2", "pageNum"),
    ],
    ids=["ipp=0", "ipp=501", "ipp=-1", "ipp=abc", "pageNum=0", "pretty=yes", "envelope=1",
         "includeCount=maybe", "pageNum-twice"],
)
def test_invalid_query_parameter_on_cert_list(server, gid, managed, query, param):
    r = server.call("GET", certs_path(gid, managed), params=query)
    assert_atlas_error(
        r, 400, "INVALID_QUERY_PARAMETER", [param], f"Invalid query parameter {param} specified."
    )


@pytest.mark.parametrize("path", ["/groups", "/groups/{gid}/databaseUsers"])
def test_invalid_query_parameter_on_other_lists(server, gid, path):
    r = server.call("GET", path.format(gid=gid), params={"itemsPerPage": "501"})
    assert_atlas_error(r, 400, "INVALID_QUERY_PARAMETER", ["itemsPerPage"])


@pytest.mark.parametrize("ipp", ["1", "500"])
def test_items_per_page_bounds_are_accepted(server, gid, managed, ipp):
    server.create_cert(gid, managed)
    server.create_cert(gid, managed)
    r = server.call("GET", certs_path(gid, managed), params={"itemsPerPage": ipp})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["results"]) == min(int(ipp), 2)
    assert body["totalCount"] == 2


def test_invalid_project_owner_id(server):
    name = uname("p")
    r = server.call(
        "POST", "/groups", params={"projectOwnerId": "nope"}, json={"name": name, "orgId": server.org_id}
    )
    assert_atlas_error(r, 400, "INVALID_QUERY_PARAMETER", ["projectOwnerId"])


@pytest.mark.parametrize("months", [0, -1])
def test_months_negative_or_zero(server, gid, managed, months):
    r = server.call("POST", certs_path(gid, managed), json={"monthsUntilExpiration": months})
    assert_atlas_error(
        r,
        400,
        "ATTRIBUTE_NEGATIVE_OR_ZERO",
        ["monthsUntilExpiration"],
        "The attribute monthsUntilExpiration cannot be negative or zero.",
    )
    assert cert_count(server, gid, managed) == 0


def test_months_over_two_years(server, gid, managed):
    r = server.call("POST", certs_path(gid, managed), json={"monthsUntilExpiration": 25})
    assert_atlas_error(
        r,
        400,
        "CERT_EXPIRY_CANNOT_EXCEED_TWO_YEARS",
        [],
        "Atlas-generated X.509 certificates have a maximum expiration of 24 months.",
    )
    assert cert_count(server, gid, managed) == 0


@pytest.mark.dates
@pytest.mark.parametrize("months", [1, 24])
def test_months_bounds_are_accepted(server, gid, managed, months):
    r = server.call("POST", certs_path(gid, managed), json={"monthsUntilExpiration": months})
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.content)
    issued = cert.not_valid_before_utc + dt.timedelta(hours=1)
    # Exactly `months` calendar months on, clamped to the month's end on any date (issued on
    # the 31st, or on 29 February with 24 months).
    assert cert.not_valid_after_utc == add_months(issued, months)
    assert cert_count(server, gid, managed) == 1


# ---------------------------------------------------------------------------------------------
# Project ids
# ---------------------------------------------------------------------------------------------

MALFORMED_IDS = ["abc", "5EFDA6AEA3F2ED2E7DD6CE05", "5efda6aea3f2ed2e7dd6ce0"]


@pytest.mark.parametrize("bad", MALFORMED_IDS, ids=["short", "uppercase", "23-chars"])
@pytest.mark.parametrize(
    "method,path,body",
    [
        ("GET", "/groups/{g}", None),
        ("DELETE", "/groups/{g}", None),
        ("GET", "/groups/{g}/databaseUsers", None),
        ("POST", "/groups/{g}/databaseUsers/alice/certs", {"monthsUntilExpiration": 3}),
        ("GET", "/groups/{g}/userSecurity", None),
    ],
    ids=["get-group", "delete-group", "list-users", "create-cert", "user-security"],
)
def test_invalid_group_id(server, bad, method, path, body):
    r = server.call(method, path.format(g=bad), json=body)
    assert_atlas_error(
        r, 404, "INVALID_GROUP_ID", [bad], f"An invalid group ID {bad} was specified."
    )


GROUP_NOT_FOUND_BODY = (
    '{"detail":"No group with ID 111111111111111111111111 exists.","error":404,'
    '"errorCode":"GROUP_NOT_FOUND","parameters":["111111111111111111111111"],"reason":"Not Found"}'
)


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("GET", "/groups/{g}", None),
        ("DELETE", "/groups/{g}", None),
        ("GET", "/groups/{g}/databaseUsers", None),
        ("POST", "/groups/{g}/databaseUsers", None),
        ("GET", "/groups/{g}/databaseUsers/$external/alice", None),
        ("GET", "/groups/{g}/databaseUsers/alice/certs", None),
        ("POST", "/groups/{g}/databaseUsers/alice/certs", {"monthsUntilExpiration": 3}),
        ("PATCH", "/groups/{g}/userSecurity", {"customerX509": {"cas": ""}}),
        ("DELETE", "/groups/{g}/userSecurity/customerX509", None),
    ],
    ids=["get-group", "delete-group", "list-users", "create-user", "get-user", "list-certs",
         "create-cert", "patch-user-security", "disable-customer-x509"],
)
def test_group_not_found_exact_body(server, method, path, body):
    if method == "POST" and path.endswith("databaseUsers"):
        body = user_body(UNKNOWN_GROUP, "alice")
    r = server.call(method, path.format(g=UNKNOWN_GROUP), json=body)
    assert_atlas_error(r, 404, "GROUP_NOT_FOUND", [UNKNOWN_GROUP])
    assert r.text == GROUP_NOT_FOUND_BODY


# ---------------------------------------------------------------------------------------------
# API versioning
# ---------------------------------------------------------------------------------------------

INVALID_VERSION_BODY = (
    '{"detail":"Invalid accept header or version date.","error":406,'
    '"errorCode":"INVALID_VERSION_DATE","parameters":[],"reason":"Not Acceptable"}'
)


@pytest.mark.parametrize(
    "accept",
    [
        None,  # header removed entirely
        "*/*",
        "application/json",
        "application/vnd.atlas.2022-12-31+json",
        "application/vnd.atlas.2023-02-30+json",
        "application/vnd.atlas.preview+json",
        "application/vnd.atlas.2023-01-01+csv",
    ],
    ids=["missing", "any", "json", "before-2023", "invalid-date", "preview", "csv"],
)
@pytest.mark.parametrize("method,path", [("GET", "/groups"), ("GET", "/groups/{g}/userSecurity"),
                                         ("POST", "/groups/{g}/databaseUsers/x/certs")])
def test_invalid_version_date(server, gid, accept, method, path):
    r = server.call(
        method, path.format(g=gid), accept=None, headers={"Accept": accept},
        json={"monthsUntilExpiration": 3} if method == "POST" else None,
    )
    assert_atlas_error(r, 406, "INVALID_VERSION_DATE", [])
    assert r.text == INVALID_VERSION_BODY


def test_later_version_date_resolves_to_2023_01_01(server, gid):
    r = server.call("GET", f"/groups/{gid}", accept="application/vnd.atlas.2025-03-12+json")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == V2_CONTENT_TYPE
    assert r.json()["id"] == gid


def test_v1_needs_no_accept(server, gid):
    r = server.call("GET", f"/groups/{gid}", version="v1.0", headers={"Accept": None})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["id"] == gid
    assert r.json()["links"][0]["href"] == server.url(f"/groups/{gid}", version="v1.0")


def test_v1_errors_use_the_same_format(server):
    r = server.call("GET", f"/groups/{UNKNOWN_GROUP}", version="v1.0")
    assert_atlas_error(r, 404, "GROUP_NOT_FOUND", [UNKNOWN_GROUP])
    assert r.text == GROUP_NOT_FOUND_BODY


# ---------------------------------------------------------------------------------------------
# Certificates for users that are not managed, or do not exist
# ---------------------------------------------------------------------------------------------


def test_customer_x509_user_cannot_get_managed_cert(server, gid):
    dn = f"CN={uname('alice')},OU=users,DC=example,DC=com"
    server.create_user(gid, dn, x509_type="CUSTOMER")
    r = server.call("POST", certs_path(gid, dn), json={"monthsUntilExpiration": 3})
    assert_atlas_error(
        r, 400, "USER_NOT_MANAGED_X509", [], "The user does not have managed mode X.509 enabled."
    )
    assert cert_count(server, gid, dn) == 0


def test_scram_user_cannot_get_managed_cert(server, gid):
    name = uname("scram")
    server.create_user(gid, name, x509_type="NONE", databaseName="admin", password="s3cretpassw0rd")
    r = server.call("POST", certs_path(gid, name), json={"monthsUntilExpiration": 3})
    assert_atlas_error(r, 400, "USER_NOT_MANAGED_X509", [])
    assert cert_count(server, gid, name) == 0


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("GET", "/groups/{g}/databaseUsers/nobody/certs", None),
        ("POST", "/groups/{g}/databaseUsers/nobody/certs", {"monthsUntilExpiration": 3}),
        ("GET", "/groups/{g}/databaseUsers/$external/nobody", None),
        ("PATCH", "/groups/{g}/databaseUsers/$external/nobody", {"roles": ROLES}),
        ("DELETE", "/groups/{g}/databaseUsers/$external/nobody", None),
        ("GET", "/groups/{g}/databaseUsers/admin/nobody", None),
    ],
    ids=["list-certs", "create-cert", "get", "patch", "delete", "get-admin"],
)
def test_username_not_found(server, gid, method, path, body):
    r = server.call(method, path.format(g=gid), json=body)
    assert_atlas_error(
        r, 404, "USERNAME_NOT_FOUND", ["nobody"], "No user with username nobody exists."
    )


def test_user_on_wrong_database_is_not_found(server, gid, managed):
    r = server.call("GET", user_path(gid, "admin", managed))
    assert_atlas_error(r, 404, "USERNAME_NOT_FOUND", [managed])


# ---------------------------------------------------------------------------------------------
# Database users
# ---------------------------------------------------------------------------------------------


def test_user_already_exists(server, gid, managed):
    r = server.call("POST", f"/groups/{gid}/databaseUsers", json=user_body(gid, managed))
    assert_atlas_error(
        r, 409, "USER_ALREADY_EXISTS", [managed], f"A user with username {managed} already exists."
    )


def _create_rejected(server, gid, body, status, code, params=None, detail=None):
    r = server.call("POST", f"/groups/{gid}/databaseUsers", json=body)
    assert_atlas_error(r, status, code, params, detail)
    for db in ("$external", "admin"):
        assert_no_user(server, gid, db, body["username"])


def test_managed_user_on_admin_database(server, gid):
    _create_rejected(
        server, gid, user_body(gid, uname(), databaseName="admin"), 400,
        "DATABASE_NAME_INVALID_EXTERNAL", [],
        "Database name invalid. Externally authenticated users can only be created on the "
        "$external database.",
    )


def test_scram_user_on_external_database(server, gid):
    _create_rejected(
        server, gid, user_body(gid, uname(), x509Type="NONE", password="s3cretpassw0rd"), 400,
        "DATABASE_NAME_INVALID_ADMIN", ["SCRAM users"],
        "Database name invalid. SCRAM users can only be created on the admin database.",
    )


def test_x509_user_with_password(server, gid):
    _create_rejected(
        server, gid, user_body(gid, uname(), password="s3cretpassw0rd"), 400,
        "ATLAS_X509_USER_CANNOT_USE_SCRAM", [],
        "Users cannot be configured for SCRAM and X.509 authentication.",
    )


def test_x509_user_with_ldap(server, gid):
    _create_rejected(
        server, gid, user_body(gid, uname(), ldapAuthType="USER"), 400,
        "ATLAS_X509_USER_CANNOT_USE_LDAP", [],
        "Users cannot be configured for X.509 and LDAP authentication.",
    )


def test_x509_user_cannot_be_temporary(server, gid):
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _create_rejected(
        server, gid, user_body(gid, uname(), deleteAfterDate=later), 400,
        "ATLAS_X509_USER_CANNOT_BE_TEMPORARY", [], "X.509 users cannot be temporary.",
    )


def test_x509_user_cannot_become_temporary(server, gid, managed):
    before = server.call("GET", user_path(gid, "$external", managed)).json()
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = server.call("PATCH", user_path(gid, "$external", managed), json={"deleteAfterDate": later})
    assert_atlas_error(r, 400, "ATLAS_X509_USER_CANNOT_BE_TEMPORARY", [])
    assert server.call("GET", user_path(gid, "$external", managed)).json() == before


def test_two_authentication_methods(server, gid):
    _create_rejected(
        server, gid,
        user_body(gid, uname(), x509Type="NONE", awsIAMType="USER", oidcAuthType="USER"),
        400, "VALIDATION_ERROR",
        ["a database user can use only one authentication method"],
        "The request content produced the validation error: a database user can use only one "
        "authentication method.",
    )


@pytest.mark.parametrize(
    "change,param",
    [
        ({"x509Type": "NONE", "databaseName": "admin", "password": "short"}, "password"),
        ({"description": "d" * 101}, "description"),
        ({"scopes": [{"name": "-bad", "type": "CLUSTER"}]}, "scopes.name"),
        ({"labels": [{"key": "", "value": "v"}]}, "labels"),
    ],
    ids=["short-password", "long-description", "scope-name", "empty-label-key"],
)
def test_invalid_attribute_values(server, gid, change, param):
    _create_rejected(
        server, gid, user_body(gid, uname(), **change), 400, "INVALID_ATTRIBUTE", [param],
        f"Invalid attribute {param} specified.",
    )


@pytest.mark.parametrize(
    "bad",
    ["alice,OU=admin", "a+CN=b", '"quoted"', "#lead", "trailing ", " leading", "back\\slash",
     "CN=alice", "semi;colon", "new\nline"],
)
def test_managed_x509_name_invalid(server, gid, bad):
    _create_rejected(
        server, gid, user_body(gid, bad), 400, "ATLAS_MANAGED_X509_NAME_INVALID", [bad],
        f"The username {bad} is invalid for Atlas-managed X.509 user auth. These usernames must "
        "take the form CN=<username> with no additional OIDs.",
    )


def test_managed_unicode_name_is_accepted_and_is_the_subject(server, gid):
    name = "Zoë用户"
    user = server.create_user(gid, name)
    assert user["username"] == name
    pem = server.create_cert(gid, name)
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.rfc4514_string() == "CN=Zoë用户"
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cns] == [name]
    assert len(cert.subject.rdns) == 1
    listed = server.call("GET", certs_path(gid, name)).json()["results"]
    assert [c["subject"] for c in listed] == ["CN=Zoë用户"]


def test_customer_x509_name_must_be_a_dn(server, gid):
    _create_rejected(
        server, gid, user_body(gid, "alice", x509Type="CUSTOMER"), 400, "ATLAS_INVALID_LDAP_NAME",
        ["alice"],
        "The distinguished name specified in the username field, alice, is not valid according "
        "to RFC 2253.",
    )


def _patch_rejected(server, gid, db, username, body, status, code, params=None, detail=None):
    before = server.call("GET", user_path(gid, db, username))
    assert before.status_code == 200, before.text
    r = server.call("PATCH", user_path(gid, db, username), json=body)
    assert_atlas_error(r, status, code, params, detail)
    after = server.call("GET", user_path(gid, db, username))
    assert after.json() == before.json(), "a rejected PATCH changed the user"


@pytest.mark.parametrize(
    "change",
    [{"x509Type": "CUSTOMER"}, {"x509Type": "NONE"}, {"awsIAMType": "USER"},
     {"oidcAuthType": "USER"}, {"ldapAuthType": "GROUP"}],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_patch_cannot_change_auth_type(server, gid, managed, change):
    _patch_rejected(
        server, gid, "$external", managed, {"roles": [{"databaseName": "admin", "roleName": "read"}], **change},
        409, "AUTH_TYPE_CANNOT_BE_CHANGED", [],
        "Cannot modify the authentication type of an existing database user.",
    )


def test_patch_cannot_change_username(server, gid, managed):
    _patch_rejected(
        server, gid, "$external", managed, {"username": managed + "x"}, 409,
        "DATABASE_USERNAME_CANNOT_BE_CHANGED", [],
        "Cannot modify the username of an existing database user.",
    )
    assert_no_user(server, gid, "$external", managed + "x")


def test_patch_cannot_change_database_name(server, gid, managed):
    _patch_rejected(
        server, gid, "$external", managed, {"databaseName": "admin"}, 409,
        "DATABASE_NAME_CANNOT_BE_CHANGED", [],
        "Cannot modify the authentication database of an existing database user.",
    )


def test_patch_x509_user_with_password(server, gid, managed):
    _patch_rejected(
        server, gid, "$external", managed, {"password": "s3cretpassw0rd"}, 400,
        "ATLAS_X509_USER_CANNOT_USE_SCRAM", [],
    )


def test_group_mismatch_on_create(server, gid):
    other = "0123456789abcdef01234567"
    body = user_body(gid, uname(), groupId=other)
    _create_rejected(
        server, gid, body, 400, "GROUP_MISMATCH", [other],
        f"The specified group ID {other} does not match the URL.",
    )


def test_group_mismatch_on_patch(server, gid, managed):
    other = server.create_project()
    _patch_rejected(
        server, gid, "$external", managed, {"groupId": other, "roles": ROLES}, 400,
        "GROUP_MISMATCH", [other],
    )


def test_group_users_limit(server):
    gid = server.create_project()
    for i in range(100):
        server.create_user(gid, f"limit{i:03d}")
    r = server.call("POST", f"/groups/{gid}/databaseUsers", json=user_body(gid, "limit100"))
    assert_atlas_error(
        r, 403, "GROUP_USERS_LIMIT_EXCEEDED", [100], "Groups can contain at most 100 database users."
    )
    assert_no_user(server, gid, "$external", "limit100")
    # Deleting one user frees a slot again.
    assert server.call("DELETE", user_path(gid, "$external", "limit000")).status_code == 204
    server.create_user(gid, "limit100")


# ---------------------------------------------------------------------------------------------
# Projects
# ---------------------------------------------------------------------------------------------


def test_group_already_exists(server):
    name = uname("dup")
    server.create_project(name)
    r = server.call("POST", "/groups", json={"name": name, "orgId": server.org_id})
    assert_atlas_error(
        r, 409, "GROUP_ALREADY_EXISTS", [name], f'A group with name "{name}" already exists.'
    )
    listed = server.call("GET", "/groups", params={"itemsPerPage": 500}).json()["results"]
    assert [p["name"] for p in listed].count(name) == 1


@pytest.mark.parametrize(
    "name", ["a/b", "x" * 65, ""], ids=["slash", "65-chars", "empty"]
)
def test_invalid_group_name(server, name):
    r = server.call("POST", "/groups", json={"name": name, "orgId": server.org_id})
    assert_atlas_error(
        r, 400, "INVALID_GROUP_NAME", [name], f'An invalid group name "{name}" was specified.'
    )


def test_group_name_of_64_chars_is_accepted(server):
    name = uuid.uuid4().hex * 2  # 64 characters
    r = server.call("POST", "/groups", json={"name": name, "orgId": server.org_id})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name


def test_invalid_tag_on_create_project(server):
    name = uname("p")
    r = server.call(
        "POST", "/groups",
        json={"name": name, "orgId": server.org_id, "tags": [{"key": "", "value": "v"}]},
    )
    assert_atlas_error(r, 400, "INVALID_ATTRIBUTE", ["tags"], "Invalid attribute tags specified.")
    names = [p["name"] for p in server.call("GET", "/groups", params={"itemsPerPage": 500}).json()["results"]]
    assert name not in names


@pytest.mark.parametrize("org", ["0123456789abcdef01234567", "not-an-id"])
def test_org_not_found(server, org):
    r = server.call("POST", "/groups", json={"name": uname("p"), "orgId": org})
    assert_atlas_error(r, 404, "ORG_NOT_FOUND", [org], f"No organization with ID {org} exists.")


# ---------------------------------------------------------------------------------------------
# Customer CA (userSecurity.customerX509)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca_pem() -> str:
    return make_cert("Customer Root CA")


@pytest.fixture(scope="module")
def ca2_pem() -> str:
    return make_cert("Customer Intermediate CA")


def _user_security(server, gid):
    r = server.call("GET", f"/groups/{gid}/userSecurity")
    assert r.status_code == 200, r.text
    return r.json()


def test_customer_ca_blocks_managed_certs_until_disabled(server, ca_pem):
    gid = server.create_project()
    user = uname("m")
    server.create_user(gid, user)
    server.create_cert(gid, user)

    r = server.call("PATCH", f"/groups/{gid}/userSecurity", json={"customerX509": {"cas": ca_pem}})
    assert r.status_code == 202, r.text
    assert r.json()["customerX509"] == {"cas": ca_pem}
    assert _user_security(server, gid)["customerX509"] == {"cas": ca_pem}

    r = server.call("POST", certs_path(gid, user), json={"monthsUntilExpiration": 3})
    assert_atlas_error(
        r, 400, "CANNOT_GENERATE_CERT_IF_ADVANCED_X509", [],
        "The user cannot create managed X.509 certs if advanced mode is on.",
    )
    assert cert_count(server, gid, user) == 1

    r = server.call("DELETE", f"/groups/{gid}/userSecurity/customerX509")
    assert r.status_code == 202, r.text
    assert r.json()["customerX509"] == {}
    assert _user_security(server, gid)["customerX509"] == {}
    server.create_cert(gid, user)
    assert cert_count(server, gid, user) == 2


def test_customer_ca_bundle_is_stored_verbatim(server, ca_pem, ca2_pem):
    gid = server.create_project()
    bundle = ca_pem + ca2_pem
    r = server.call("PATCH", f"/groups/{gid}/userSecurity", json={"customerX509": {"cas": bundle}})
    assert r.status_code == 202, r.text
    assert r.json()["customerX509"]["cas"] == bundle
    assert _user_security(server, gid)["customerX509"]["cas"] == bundle
    # CRLF line endings and surrounding blank lines are kept, too.
    crlf = "\r\n" + bundle.replace("\n", "\r\n") + "\r\n"
    r = server.call("PATCH", f"/groups/{gid}/userSecurity", json={"customerX509": {"cas": crlf}})
    assert r.status_code == 202, r.text
    assert _user_security(server, gid)["customerX509"]["cas"] == crlf


def _bad_ca_cases(ca_pem):
    now = dt.datetime.now(dt.timezone.utc)
    lines = ca_pem.splitlines(keepends=True)
    return {
        "not-ca": make_cert("Leaf", ca=False),
        "no-basic-constraints": make_cert("Leaf", ca=None),
        "no-keycertsign": make_cert("Signless CA", key_cert_sign=False),
        "not-yet-valid": make_cert(
            "Future CA", not_before=now + dt.timedelta(days=2), not_after=now + dt.timedelta(days=30)
        ),
        "garbage": "this is not a certificate",
        "truncated": "".join(lines[: len(lines) // 2]),
        "private-key": ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode(),
        "good-then-leaf": ca_pem + make_cert("Leaf", ca=False),
        "corrupt-der": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    }


BAD_CA_IDS = ["not-ca", "no-basic-constraints", "no-keycertsign", "not-yet-valid", "garbage",
              "truncated", "private-key", "good-then-leaf", "corrupt-der"]


@pytest.fixture(scope="module")
def ca_project(server, ca_pem):
    """A project whose customer CA is set; bad updates must leave it alone."""
    gid = server.create_project()
    r = server.call("PATCH", f"/groups/{gid}/userSecurity", json={"customerX509": {"cas": ca_pem}})
    assert r.status_code == 202, r.text
    return gid


@pytest.mark.parametrize("case", BAD_CA_IDS)
def test_invalid_customer_ca_is_refused(server, ca_pem, ca_project, case):
    bad = _bad_ca_cases(ca_pem)[case]
    before = _user_security(server, ca_project)
    r = server.call(
        "PATCH", f"/groups/{ca_project}/userSecurity", json={"customerX509": {"cas": bad}}
    )
    body = assert_atlas_error(r, 400, "VALIDATION_ERROR")
    assert len(body["parameters"]) == 1
    assert body["parameters"][0].startswith("customerX509.cas: ")
    assert body["detail"] == f"The request content produced the validation error: {body['parameters'][0]}."
    assert _user_security(server, ca_project) == before
    assert before["customerX509"] == {"cas": ca_pem}


@pytest.mark.parametrize(
    "ldap,code,param",
    [
        ({"port": 0}, "INVALID_ATTRIBUTE", "ldap.port"),
        ({"port": 65536}, "INVALID_ATTRIBUTE", "ldap.port"),
        ({"bindUsername": "admin"}, "INVALID_ATTRIBUTE", "ldap.bindUsername"),
        ({"userToDNMapping": [{"substitution": "x"}]}, "MISSING_ATTRIBUTE", "ldap.userToDNMapping.match"),
        ({"port": "389"}, "INVALID_JSON_ATTRIBUTE", "ldap.port"),
    ],
    ids=["port-0", "port-65536", "bind-username", "mapping-match", "port-string"],
)
def test_invalid_ldap_settings(server, ca_project, ldap, code, param):
    before = _user_security(server, ca_project)
    r = server.call("PATCH", f"/groups/{ca_project}/userSecurity", json={"ldap": ldap})
    assert_atlas_error(r, 400, code, [param])
    assert _user_security(server, ca_project) == before


def test_invalid_ldap_hostname(server):
    gid = server.create_project()
    r = server.call("PATCH", f"/groups/{gid}/userSecurity", json={"ldap": {"hostname": "not a host!"}})
    assert_atlas_error(r, 400, "INVALID_ATTRIBUTE", ["ldap.hostname"])
    assert "hostname" not in _user_security(server, gid)["ldap"]


def test_expired_customer_ca_is_refused(server, ca_pem, ca_project):
    now = dt.datetime.now(dt.timezone.utc)
    expired = make_cert(
        "Old CA", not_before=now - dt.timedelta(days=400), not_after=now - dt.timedelta(days=1)
    )
    before = _user_security(server, ca_project)
    for cas in (expired, ca_pem + expired):
        r = server.call(
            "PATCH", f"/groups/{ca_project}/userSecurity", json={"customerX509": {"cas": cas}}
        )
        assert_atlas_error(
            r, 400, "EXPIRED_X509_CA_CERTIFICATE", [], "The X.509 CA certificate has expired."
        )
        assert _user_security(server, ca_project) == before


def test_expired_customer_ca_on_project_without_ca(server):
    gid = server.create_project()
    now = dt.datetime.now(dt.timezone.utc)
    expired = make_cert(
        "Old CA", not_before=now - dt.timedelta(days=400), not_after=now - dt.timedelta(days=1)
    )
    r = server.call("PATCH", f"/groups/{gid}/userSecurity", json={"customerX509": {"cas": expired}})
    assert_atlas_error(r, 400, "EXPIRED_X509_CA_CERTIFICATE", [])
    assert _user_security(server, gid)["customerX509"] == {}
    user = uname("m")
    server.create_user(gid, user)
    server.create_cert(gid, user)  # still in managed mode


# ---------------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/atlas/v2/nope", "/api/atlas/v2/groups/{g}/clusters", "/api/atlas/v1.0/nope",
     "/api/atlas/v3/groups", "/api/nothing"],
)
def test_unknown_path(server, gid, path):
    path = path.format(g=gid)
    r = server.session.get(server.root + path, headers={"Accept": V2}, timeout=60)
    assert_atlas_error(r, 404, "RESOURCE_NOT_FOUND", [path], f"Cannot find resource {path}.")


def test_undecodable_path_names_the_request_path(server, gid):
    path = f"/api/atlas/v2/groups/{gid}/databaseUsers/admin/%FF"
    r = server.session.get(server.root + path, headers={"Accept": V2}, timeout=60)
    assert_atlas_error(r, 404, "RESOURCE_NOT_FOUND", [path], f"Cannot find resource {path}.")


def test_undecodable_path_is_atlas_404(server, gid):
    path = f"/api/atlas/v2/groups/{gid}/databaseUsers/admin/%FF"
    r = server.session.get(server.root + path, headers={"Accept": V2}, timeout=60)
    assert_atlas_error(r, 404, "RESOURCE_NOT_FOUND")


@pytest.mark.parametrize(
    "method,path,allow",
    [
        ("PUT", "/groups", "GET,HEAD,POST"),
        ("PATCH", "/groups/{g}", "GET,HEAD,DELETE"),
        ("POST", "/groups/{g}/userSecurity/customerX509", "DELETE"),
        ("DELETE", "/groups/{g}/databaseUsers", "GET,HEAD,POST"),
    ],
)
def test_method_not_allowed(server, gid, method, path, allow):
    r = server.call(method, path.format(g=gid), json={})
    assert_atlas_error(
        r, 405, "UNEXPECTED_ERROR", [], f"The HTTP method {method} is not supported on this resource."
    )
    assert sorted(r.headers["Allow"].split(",")) == sorted(allow.split(","))


def test_payload_too_large(server):
    big = b'{"name":"' + b"a" * (1024 * 1024 + 16) + b'"}'
    r = server.call("POST", "/groups", data=big, headers={"Content-Type": "application/json"})
    assert_atlas_error(r, 413, "VALIDATION_ERROR")


def test_payload_too_large_names_the_limit(server):
    big = b'{"name":"' + b"a" * (1024 * 1024 + 16) + b'"}'
    r = server.call("POST", "/groups", data=big, headers={"Content-Type": "application/json"})
    body = assert_atlas_error(r, 413, "VALIDATION_ERROR")
    assert "1048576" in body["detail"], body["detail"]


# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------

CHALLENGE_BODY = (
    '{\n  "error" : 401,\n  "reason" : "Unauthorized",\n'
    '  "detail" : "You are not authorized for this resource.",\n'
    '  "errorCode" : "UNEXPECTED_ERROR"\n}'
)
CHALLENGE_HEADER = re.compile(
    r'^Digest realm="MMS Public API", domain="", nonce="[A-Za-z0-9+/]{32}", '
    r'algorithm=MD5, qop="auth", stale=false$'
)


def assert_challenge(r) -> None:
    assert r.status_code == 401, r.text
    assert r.text == CHALLENGE_BODY
    assert list(json.loads(r.text).keys()) == ["error", "reason", "detail", "errorCode"]
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Error-Code"] == "UNEXPECTED_ERROR"
    assert CHALLENGE_HEADER.match(r.headers["WWW-Authenticate"]), r.headers["WWW-Authenticate"]


UNAUTH_ROUTES = [
    ("GET", "/api/atlas/v2/groups"),
    ("POST", "/api/atlas/v2/groups"),
    ("GET", "/api/atlas/v2/groups/{g}"),
    ("DELETE", "/api/atlas/v2/groups/{g}"),
    ("GET", "/api/atlas/v2/groups/{g}/databaseUsers"),
    ("POST", "/api/atlas/v2/groups/{g}/databaseUsers"),
    ("GET", "/api/atlas/v2/groups/{g}/databaseUsers/$external/alice"),
    ("PATCH", "/api/atlas/v2/groups/{g}/databaseUsers/$external/alice"),
    ("DELETE", "/api/atlas/v2/groups/{g}/databaseUsers/$external/alice"),
    ("GET", "/api/atlas/v2/groups/{g}/databaseUsers/alice/certs"),
    ("POST", "/api/atlas/v2/groups/{g}/databaseUsers/alice/certs"),
    ("GET", "/api/atlas/v2/groups/{g}/userSecurity"),
    ("PATCH", "/api/atlas/v2/groups/{g}/userSecurity"),
    ("DELETE", "/api/atlas/v2/groups/{g}/userSecurity/customerX509"),
    ("GET", "/api/atlas/v1.0/groups"),
    ("GET", "/api/atlas/v2/nope"),
    ("PUT", "/api/atlas/v2/groups"),
    ("GET", "/api/atlas/v2/groups/abc"),
    ("GET", "/api/dbcerts/v1/groups/{g}/ca"),
]


@pytest.mark.parametrize("method,path", UNAUTH_ROUTES, ids=[f"{m} {p}" for m, p in UNAUTH_ROUTES])
def test_unauthenticated_gets_digest_challenge(server, gid, method, path):
    r = requests.request(method, server.root + path.format(g=gid), headers={"Accept": V2}, timeout=60)
    assert_challenge(r)


def test_unauthenticated_without_accept_is_401_not_406(server):
    r = requests.get(server.url("/groups"), headers={"Accept": None}, timeout=60)
    assert_challenge(r)


def test_auth_comes_before_body_validation(server, gid, managed):
    # Malformed JSON without credentials: 401, never 400.
    r = requests.post(server.url("/groups"), data=b"{", headers={"Accept": V2}, timeout=60)
    assert_challenge(r)
    r = requests.post(
        server.url(certs_path(gid, managed)), data=b'{"monthsUntilExpiration":"x"}',
        headers={"Accept": V2, "Content-Type": V2}, timeout=60,
    )
    assert_challenge(r)
    # A valid body without credentials has no effect.
    name = uname("p")
    r = requests.post(
        server.url("/groups"), json={"name": name, "orgId": server.org_id}, headers={"Accept": V2},
        timeout=60,
    )
    assert_challenge(r)
    r = requests.post(
        server.url(certs_path(gid, managed)), json={"monthsUntilExpiration": 3},
        headers={"Accept": V2}, timeout=60,
    )
    assert_challenge(r)
    names = [p["name"] for p in server.call("GET", "/groups", params={"itemsPerPage": 500}).json()["results"]]
    assert name not in names
    assert cert_count(server, gid, managed) == 0


@pytest.mark.parametrize(
    "user,password",
    [("{public}", "wrong-private-key"), ("nosuchkey", "{private}")],
    ids=["wrong-private-key", "unknown-public-key"],
)
def test_bad_digest_credentials(server, user, password):
    auth = HTTPDigestAuth(
        user.format(public=server.public_key), password.format(private=server.private_key)
    )
    r = requests.get(server.url("/groups"), auth=auth, headers={"Accept": V2}, timeout=60)
    assert_challenge(r)


def test_garbage_authorization_header(server):
    for value in ("Basic Zm9vOmJhcg==", "Digest", "Bearer abc.def.ghi"):
        r = requests.get(
            server.url("/groups"), headers={"Accept": V2, "Authorization": value}, timeout=60
        )
        assert_challenge(r)


def test_create_user_requires_group_id(server):
    """The spec lists groupId as required in CloudDatabaseUser; a body without it is refused
    with MISSING_ATTRIBUTE (reported after the other rules), and nothing is created."""
    gid = server.create_project()
    body = {
        "databaseName": "$external",
        "x509Type": "MANAGED",
        "username": "no-group-id",
        "roles": [{"databaseName": "admin", "roleName": "read"}],
    }
    r = server.call("POST", f"/groups/{gid}/databaseUsers", json=body)
    assert_atlas_error(r, 400, "MISSING_ATTRIBUTE", ["groupId"])
    r = server.call("GET", f"/groups/{gid}/databaseUsers/$external/no-group-id")
    assert_atlas_error(r, 404, "USERNAME_NOT_FOUND")
    body["groupId"] = gid
    assert server.call("POST", f"/groups/{gid}/databaseUsers", json=body).status_code == 201


def test_v1_create_user_takes_the_project_from_the_path(server):
    """On v1.0, a body without groupId takes the project from the path: the shape a
    third-party client has sent to Atlas for years (databaseName, roles, username, password,
    awsIAMType). Every later get, list and delete of the user works; a groupId that differs
    from the path is still GROUP_MISMATCH, with nothing created."""
    gid = server.create_project()
    other = server.create_project()
    body = {
        "databaseName": "admin",
        "roles": [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}],
        "username": "legacy-client",
        "password": "a-long-enough-password",
        "awsIAMType": "NONE",
    }
    r = server.call("POST", f"/groups/{other}/databaseUsers", version="v1.0", json={**body, "groupId": gid})
    assert_atlas_error(r, 400, "GROUP_MISMATCH", [gid])
    r = server.call("POST", f"/groups/{gid}/databaseUsers", version="v1.0", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["groupId"] == gid and r.json()["username"] == "legacy-client"
    assert "password" not in r.json()
    path = f"/groups/{gid}/databaseUsers/admin/legacy-client"
    assert server.call("GET", path, version="v1.0").json()["groupId"] == gid
    listed = server.call("GET", f"/groups/{gid}/databaseUsers", version="v1.0").json()["results"]
    assert [u["username"] for u in listed] == ["legacy-client"]
    assert server.call("GET", f"/groups/{other}/databaseUsers", version="v1.0").json()["results"] == []
    assert server.call("DELETE", path, version="v1.0").status_code == 204
    assert_atlas_error(server.call("GET", path, version="v1.0"), 404, "USERNAME_NOT_FOUND")
