"""Where real Atlas deliberately differs from MongoDB's OpenAPI spec, and how test_schemathesis.py
tolerates exactly that and nothing more.

Every schemathesis check stays on for every operation. A failure a check reports is dropped only
when it matches one entry of `DIVERGENCES` below: one check, the named operations, a precise
condition on the request and response, and a `reason` (copied verbatim into
docs/COMPATIBILITY.md). Where dropping a failure would leave part of a response unchecked, the
`atlas_compensating_checks` check validates that part in Atlas's shape instead:

* a `createGroup` 201 is validated against the spec's 200 entry (schema, content type, headers);
* a `deleteGroup` 202 must carry the 204 entry's content type and exactly `{}`;
* an `envelope=true` success is unwrapped and its content validated against the documented schema;
* a raw-PEM `createGroupDatabaseUserCert` 201 must be one certificate and its matching PKCS#8 key.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from schemathesis import Case, Response
from schemathesis.core.failures import Failure, FailureGroup, MalformedJson
from schemathesis.openapi.checks import JsonSchemaError, RejectedPositiveData, UndefinedStatusCode
from schemathesis.specs.openapi.checks import content_type_conformance, response_headers_conformance

from conftest import SPEC_DIR

ATLAS_V2 = "application/vnd.atlas.2023-01-01+json"

# Operations whose success body is a list object (enveloped by adding `status`, not by wrapping).
LIST_OPERATIONS = frozenset({"listGroups", "listGroupDatabaseUsers", "listGroupDatabaseUserCerts"})

# ---------------------------------------------------------------------------------------------
# Small accessors
# ---------------------------------------------------------------------------------------------


def operation_id(case: Case) -> str:
    return case.operation.definition.raw["operationId"]


def sent_query(response: Response) -> dict[str, list[str]]:
    """The query string exactly as it went over the wire."""
    return parse_qs(urlsplit(response.request.url).query, keep_blank_values=True)


def is_enveloped(response: Response) -> bool:
    """`envelope=true`, given once, on a request that succeeded (errors are never enveloped)."""
    return 200 <= response.status_code < 300 and sent_query(response).get("envelope") == ["true"]


def error_body(response: Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_code(response: Response) -> str | None:
    return error_body(response).get("errorCode")


def error_parameters(response: Response) -> list[Any]:
    params = error_body(response).get("parameters")
    return params if isinstance(params, list) else []


def json_body(case: Case) -> dict[str, Any]:
    return case.body if isinstance(case.body, dict) else {}


# ---------------------------------------------------------------------------------------------
# The request-body schemas as MongoDB wrote them, to tell a declared attribute from an unknown one
# ---------------------------------------------------------------------------------------------


class RawSpec:
    def __init__(self, path: Any) -> None:
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            target: Any = self.doc
            for part in ref[2:].split("/"):
                target = target[part]
            node = target
        return node

    def request_schema(self, case: Case) -> dict[str, Any]:
        op = self.doc["paths"][case.operation.path][case.method.lower()]
        return self.resolve(op["requestBody"]["content"][ATLAS_V2]["schema"])

    def declares(self, case: Case, dotted: str) -> bool:
        """Whether the spec's request schema declares every segment of `a.0.b`."""
        node = self.request_schema(case)
        for segment in dotted.split("."):
            node = self.resolve(node)
            if node.get("type") == "array":
                # Atlas names a field of an array item with or without the item's index.
                node = self.resolve(node.get("items", {}))
                if segment.isdigit():
                    continue
            props = node.get("properties", {})
            if segment not in props:
                return False
            node = props[segment]
        return True


SPEC_PATH = SPEC_DIR / "atlas-x509-subset.yaml"
SPEC = RawSpec(SPEC_PATH)


# ---------------------------------------------------------------------------------------------
# The documented divergences
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Divergence:
    """One failure that observed or documented Atlas behaviour makes expected."""

    key: str
    # The schemathesis check whose failure is dropped (each `failure` class must report it).
    check: str
    failure: tuple[type[Failure], ...]
    operations: frozenset[str] | None  # None: every operation
    # Whether this failure, for this request and response, is exactly the divergence.
    applies: Callable[[Case, Response, Failure], bool]
    # Why, for docs/COMPATIBILITY.md: what Atlas does, the source, and how narrow the exemption is.
    reason: str


def _schema_path(failure: Failure) -> list[str]:
    return [str(p) for p in getattr(failure, "schema_path", [])]


def _instance_path(failure: Failure) -> list[str]:
    return [str(p) for p in getattr(failure, "instance_path", [])]


def _pem_body(response: Response) -> bool:
    return response.content.startswith(b"-----BEGIN CERTIFICATE-----\n")


def _undeclared_attribute(case: Case, response: Response) -> bool:
    if response.status_code != 400 or error_code(response) != "INVALID_ATTRIBUTE":
        return False
    params = error_parameters(response)
    return len(params) == 1 and isinstance(params[0], str) and not SPEC.declares(case, params[0])


_METHOD_FIELDS = ("x509Type", "awsIAMType", "ldapAuthType", "oidcAuthType")


def _hostname_matches_in_full(value: str) -> bool:
    """Whether the spec's ldap.hostname pattern, as written, matches all of `value`."""
    pattern = SPEC.doc["components"]["schemas"]["LDAPSecuritySettings"]["properties"]["hostname"]["pattern"]
    return re.fullmatch(pattern, value) is not None


def _member(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    return value if isinstance(value, dict) else {}


def _customer_ca_refused(case: Case, response: Response) -> bool:
    cas = _member(json_body(case), "customerX509").get("cas")
    if response.status_code != 400 or not isinstance(cas, str) or cas == "":
        return False
    code, params = error_code(response), error_parameters(response)
    if code == "EXPIRED_X509_CA_CERTIFICATE":
        return True
    return code == "VALIDATION_ERROR" and bool(params) and str(params[0]).startswith("customerX509.cas")


def _methods(body: dict[str, Any]) -> list[str]:
    """The non-SCRAM authentication methods a CloudDatabaseUser body asks for."""
    return [f for f in _METHOD_FIELDS if body.get(f) not in (None, "NONE")]


def _within_a_week(value: Any) -> bool:
    """Whether `value` is an RFC 3339 date-time in the future and at most one week away."""
    if not isinstance(value, str):
        return True
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        return False
    now = datetime.datetime.now(datetime.timezone.utc)
    return now < when <= now + datetime.timedelta(days=7)


# Cross-field rules Atlas applies to CloudDatabaseUser that the spec's schema cannot express, each
# an Atlas error code from MongoDB's error table (DOCS-ERR).
DATABASE_USER_RULE_CODES = frozenset(
    {
        "DATABASE_NAME_INVALID_EXTERNAL",
        "DATABASE_NAME_INVALID_ADMIN",
        "ATLAS_X509_USER_CANNOT_USE_SCRAM",
        "ATLAS_X509_USER_CANNOT_USE_LDAP",
        "ATLAS_X509_USER_CANNOT_BE_TEMPORARY",
        "ATLAS_MANAGED_X509_NAME_INVALID",
        "ATLAS_INVALID_LDAP_NAME",
        "ATLAS_INVALID_DN_METACHARACTERS",
    }
)



def _holds_nul(value) -> bool:
    """Whether a JSON value holds U+0000 in any string, key or value. (`json.dumps` escapes it
    as `\\u0000`, so searching its output for the character itself never finds one.)"""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False

DIVERGENCES: list[Divergence] = [
    Divergence(
        key="createGroup-201",
        check="status_code_conformance",
        failure=(UndefinedStatusCode,),
        operations=frozenset({"createGroup"}),
        applies=lambda case, response, failure: response.status_code == 201,
        reason=(
            "POST /groups: Atlas answers 201 Created (observed); the spec documents 200. "
            "status_code_conformance is off for createGroup status 201 only; the 201 response is "
            "still checked against the spec's 200 entry (schema, content type, headers)."
        ),
    ),
    Divergence(
        key="deleteGroup-202",
        check="status_code_conformance",
        failure=(UndefinedStatusCode,),
        operations=frozenset({"deleteGroup"}),
        applies=lambda case, response, failure: response.status_code == 202,
        reason=(
            "DELETE /groups/{groupId}: Atlas answers 202 Accepted with body {} (observed); the spec "
            "documents 204 No Content. status_code_conformance is off for deleteGroup status 202 "
            "only; the 202 must still carry the 204 entry's content type and a body of exactly {}."
        ),
    ),
    Divergence(
        key="createGroupDatabaseUserCert-raw-pem",
        check="response_schema_conformance",
        failure=(MalformedJson,),
        operations=frozenset({"createGroupDatabaseUserCert"}),
        applies=lambda case, response, failure: response.status_code == 201 and _pem_body(response),
        reason=(
            "POST .../databaseUsers/{username}/certs: Atlas returns the PEM (certificate, then its "
            "unencrypted PKCS#8 private key) raw and unquoted under "
            "application/vnd.atlas.2023-01-01+json, where the spec's 201 schema says a JSON string "
            "(observed). response_schema_conformance is off for this operation's 201 only; the body "
            "must instead be exactly one CERTIFICATE block for CN=<username> followed by the "
            "matching PRIVATE KEY block."
        ),
    ),
    Divergence(
        key="ApiError-parameters-scalars",
        check="response_schema_conformance",
        failure=(JsonSchemaError,),
        operations=None,
        applies=lambda case, response, failure: (
            response.status_code >= 400
            and _schema_path(failure)[-3:] == ["parameters", "items", "type"]
            and isinstance(getattr(failure, "instance", None), (str, int, float))
            and not isinstance(getattr(failure, "instance", None), bool)
        ),
        reason=(
            "Error bodies: Atlas fills ApiError.parameters with the plain values substituted into "
            'the message, strings and numbers (observed: ["111111111111111111111111"], '
            '["/api/oauth/token",50,1]); the spec types the items as objects. Only that '
            "items-type violation, for string or number items, is ignored; the rest of every error "
            "body is validated."
        ),
    ),
    Divergence(
        key="CloudDatabaseUser-groupId-returned",
        check="response_schema_conformance",
        failure=(JsonSchemaError,),
        operations=frozenset(
            {
                "listGroupDatabaseUsers",
                "createGroupDatabaseUser",
                "getGroupDatabaseUser",
                "updateGroupDatabaseUser",
            }
        ),
        applies=lambda case, response, failure: (
            200 <= response.status_code < 300
            and _instance_path(failure)[-1:] == ["groupId"]
            and _schema_path(failure)[-3:] == ["properties", "groupId", "not"]
        ),
        reason=(
            "Database users: Atlas returns groupId in every CloudDatabaseUser it sends (observed); "
            "the spec marks groupId writeOnly. Only the presence of groupId in a database-user "
            "response is tolerated."
        ),
    ),
    Divergence(
        key="UserCert-subject-pattern",
        check="response_schema_conformance",
        failure=(JsonSchemaError,),
        operations=frozenset({"listGroupDatabaseUserCerts"}),
        applies=lambda case, response, failure: (
            response.status_code == 200
            and _instance_path(failure)[-1:] == ["subject"]
            and _schema_path(failure)[-1:] == ["pattern"]
            and isinstance(getattr(failure, "instance", None), str)
            and re.fullmatch(r"CN=[^,]+", failure.instance) is not None  # type: ignore[attr-defined]
        ),
        reason=(
            "Certificate list: Atlas-managed certificates have subject CN=<username> and nothing "
            "else (observed: CN=user389); the spec's subject pattern (copied from LDAP bind DNs) "
            "requires DC= components. Only a subject of the form CN=<name> is tolerated."
        ),
    ),
    Divergence(
        key="envelope-wrapped-success",
        check="response_schema_conformance",
        failure=(JsonSchemaError, MalformedJson),
        operations=None,
        applies=lambda case, response, failure: is_enveloped(response),
        reason=(
            'envelope=true: Atlas wraps a single entity as {"content": <entity>, "status": <HTTP '
            "status>} and adds status to a list object (DOCS-REF, Envelopes); the spec's response "
            "schemas describe only the bare entity. For an enveloped success the schema is checked "
            "on the unwrapped content instead, and status must equal the HTTP status."
        ),
    ),
    Divergence(
        key="undocumented-400-invalid-query-parameter",
        check="status_code_conformance",
        failure=(UndefinedStatusCode,),
        operations=frozenset(
            {
                "listGroupDatabaseUsers",
                "getGroupDatabaseUser",
                "deleteGroupDatabaseUser",
                "getGroupUserSecurity",
                "disableGroupUserSecurityCustomerX509",
            }
        ),
        applies=lambda case, response, failure: (
            response.status_code == 400 and error_code(response) == "INVALID_QUERY_PARAMETER"
        ),
        reason=(
            "listGroupDatabaseUsers, getGroupDatabaseUser, deleteGroupDatabaseUser, "
            "getGroupUserSecurity, disableGroupUserSecurityCustomerX509 take typed query parameters "
            "(envelope, pretty; includeCount, itemsPerPage, pageNum on the list) but the spec lists "
            "no 400 response for them. Atlas's answer to a malformed query parameter is 400 "
            "INVALID_QUERY_PARAMETER (DOCS-ERR). status_code_conformance tolerates a 400 on these "
            "operations only with that error code."
        ),
    ),
    Divergence(
        key="unknown-body-attribute",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset(
            {
                "createGroup",
                "createGroupDatabaseUser",
                "updateGroupDatabaseUser",
                "createGroupDatabaseUserCert",
                "updateGroupUserSecurity",
            }
        ),
        applies=lambda case, response, failure: _undeclared_attribute(case, response),
        reason=(
            "Request bodies: the spec's schemas do not set additionalProperties: false, so a body "
            "with extra attributes is schema-valid; Atlas rejects any attribute it does not define "
            "with 400 INVALID_ATTRIBUTE naming it (DOCS-REF, JSON). Tolerated only when the named "
            "attribute is not declared in the spec's request schema."
        ),
    ),
    Divergence(
        key="nul-character",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=None,
        applies=lambda case, response, failure: (
            response.status_code == 400
            and error_code(response) == "INVALID_JSON"
            and _holds_nul(case.body)
        ),
        reason=(
            "Request bodies: JSON strings may hold U+0000, and the spec does not exclude it; "
            "dbcerts refuses a body holding one with 400 INVALID_JSON on every backend, because "
            "PostgreSQL text cannot store it (see docs/COMPATIBILITY.md, Outside the Atlas API). "
            "Tolerated only when the body really holds a NUL."
        ),
    ),
    Divergence(
        key="createGroup-regionUsageRestrictions",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"createGroup"}),
        applies=lambda case, response, failure: (
            response.status_code == 400
            and error_code(response) == "INVALID_ATTRIBUTE"
            and error_parameters(response) == ["regionUsageRestrictions"]
        ),
        reason=(
            "POST /groups: regionUsageRestrictions is in the spec's Group schema, but the spec's "
            'own description says "In Commercial Atlas, this field will be rejected in requests"; '
            "Atlas answers 400 INVALID_ATTRIBUTE."
        ),
    ),
    Divergence(
        key="createGroupDatabaseUserCert-months-not-positive",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"createGroupDatabaseUserCert"}),
        applies=lambda case, response, failure: (
            response.status_code == 400
            and isinstance(json_body(case).get("monthsUntilExpiration"), int)
            and not isinstance(json_body(case).get("monthsUntilExpiration"), bool)
            and json_body(case)["monthsUntilExpiration"] <= 0
            and error_parameters(response) == ["monthsUntilExpiration"]
        ),
        reason=(
            "POST .../certs: the spec gives monthsUntilExpiration a maximum of 24 but no minimum; a "
            "certificate needs at least one month (the Terraform provider validates 1 to 24, the v1 "
            "Go client refuses 0; Atlas's own error for a value <= 0 is unconfirmed). A 400 naming "
            "monthsUntilExpiration is tolerated only for a value <= 0."
        ),
    ),
    Divergence(
        key="createGroupDatabaseUserCert-preconditions",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"createGroupDatabaseUserCert"}),
        applies=lambda case, response, failure: (
            response.status_code == 400
            and error_code(response) in {"USER_NOT_MANAGED_X509", "CANNOT_GENERATE_CERT_IF_ADVANCED_X509"}
        ),
        reason=(
            "POST .../certs: the spec's description makes two preconditions the schema cannot "
            'express: the user must have "x509Type" : "MANAGED", and a project in Self-Managed '
            "X.509 mode (a customer CA is set) cannot have Atlas-generated certificates. Atlas "
            "answers 400 USER_NOT_MANAGED_X509 / CANNOT_GENERATE_CERT_IF_ADVANCED_X509 (DOCS-ERR); "
            "a 400 is tolerated only with one of these two codes."
        ),
    ),
    Divergence(
        key="database-user-cross-field-rules",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"createGroupDatabaseUser", "updateGroupDatabaseUser"}),
        applies=lambda case, response, failure: (
            response.status_code == 400 and error_code(response) in DATABASE_USER_RULE_CODES
        ),
        reason=(
            "Database users: Atlas enforces rules across CloudDatabaseUser fields that the spec's "
            "schema cannot express (x.509 users cannot have a password, LDAP or deleteAfterDate; "
            "external users live on $external and SCRAM users on admin; MANAGED x.509 usernames "
            "are CN=<name>); it answers 400 with "
            + ", ".join(sorted(DATABASE_USER_RULE_CODES))
            + " (DOCS-ERR). A 400 is tolerated for a schema-valid body only with one of these codes."
        ),
    ),
    Divergence(
        key="database-user-empty-username",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"createGroupDatabaseUser"}),
        applies=lambda case, response, failure: (
            response.status_code == 400
            and error_parameters(response) == ["username"]
            and json_body(case).get("username") == ""
        ),
        reason=(
            "POST .../databaseUsers: username has a maxLength but no minLength in the schema; the "
            "spec's username table requires a name in each method's format (alphanumeric string, "
            "ARN, DN, IdP id/name), which the empty string is not. A 400 naming username is "
            "tolerated only for an empty username."
        ),
    ),
    Divergence(
        key="createGroupDatabaseUser-scram-needs-password",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"createGroupDatabaseUser"}),
        applies=lambda case, response, failure: (
            response.status_code == 400
            and error_code(response) == "MISSING_ATTRIBUTE"
            and error_parameters(response) == ["password"]
            and "password" not in json_body(case)
            and not _methods(json_body(case))
        ),
        reason=(
            "POST .../databaseUsers: password is optional in the schema, but the spec's own "
            'description says "To authenticate with SCRAM-SHA, you must specify this parameter", '
            "and a user with no other method is a SCRAM user. A 400 MISSING_ATTRIBUTE naming "
            "password is tolerated only for a body with no password and no other method."
        ),
    ),
    Divergence(
        key="database-user-one-method",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"createGroupDatabaseUser", "updateGroupDatabaseUser"}),
        applies=lambda case, response, failure: (
            response.status_code == 400
            and error_code(response) == "VALIDATION_ERROR"
            and len(_methods(json_body(case))) + ("password" in json_body(case)) > 1
        ),
        reason=(
            "Database users: the spec's username table gives each user exactly one method (SCRAM "
            "means all four *Type fields NONE), which the schema cannot express. A 400 "
            "VALIDATION_ERROR is tolerated only for a body that asks for more than one method "
            "(Atlas's error code for mixes other than x.509 with SCRAM or LDAP is unconfirmed)."
        ),
    ),
    Divergence(
        key="database-user-deleteAfterDate-window",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"createGroupDatabaseUser", "updateGroupDatabaseUser"}),
        applies=lambda case, response, failure: (
            response.status_code == 400
            and error_parameters(response) == ["deleteAfterDate"]
            and not _within_a_week(json_body(case).get("deleteAfterDate"))
        ),
        reason=(
            "Database users: deleteAfterDate is any date-time in the schema, but the spec's "
            'description says "You must specify a future date that falls within one week of '
            'making the API request". A 400 naming deleteAfterDate is tolerated only for a date '
            "outside that window."
        ),
    ),
    Divergence(
        key="database-user-empty-role-database",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"createGroupDatabaseUser", "updateGroupDatabaseUser"}),
        applies=lambda case, response, failure: (
            response.status_code == 400
            and error_parameters(response) == ["roles"]
            and any(
                isinstance(r, dict) and r.get("databaseName") == ""
                for r in (json_body(case).get("roles") or [])
            )
        ),
        reason=(
            "Database users: a role's databaseName may be empty in the schema; Atlas validates "
            "role databases (ATLAS_INVALID_ROLE_DATABASE, DOCS-ERR). A 400 naming roles is "
            "tolerated only for a body with a role on the empty database name (Atlas's exact "
            "error code for it is unconfirmed)."
        ),
    ),
    Divergence(
        key="updateGroupUserSecurity-customer-ca-is-pem",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"updateGroupUserSecurity"}),
        applies=lambda case, response, failure: _customer_ca_refused(case, response),
        reason=(
            "PATCH .../userSecurity: customerX509.cas is any string in the schema, but the spec "
            'says "MongoDB Cloud expects this as a PEM-formatted certificate" and Atlas rejects an '
            "expired CA (EXPIRED_X509_CA_CERTIFICATE, DOCS-ERR). A 400 is tolerated for a "
            "non-empty cas only with EXPIRED_X509_CA_CERTIFICATE or a VALIDATION_ERROR about "
            "customerX509.cas."
        ),
    ),
    Divergence(
        key="updateGroupUserSecurity-ldap-port-range",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"updateGroupUserSecurity"}),
        applies=lambda case, response, failure: (
            response.status_code == 400
            and error_parameters(response) == ["ldap.port"]
            and isinstance(_member(json_body(case), "ldap").get("port"), int)
            and not 1 <= json_body(case)["ldap"]["port"] <= 65535
        ),
        reason=(
            "PATCH .../userSecurity: ldap.port is any int32 in the schema, but it is the TCP port "
            "of the LDAP host, 1 to 65535. A 400 naming ldap.port is tolerated only for a value "
            "outside that range (Atlas's exact answer is unconfirmed)."
        ),
    ),
    Divergence(
        key="updateGroupUserSecurity-ldap-hostname-anchored",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"updateGroupUserSecurity"}),
        applies=lambda case, response, failure: (
            response.status_code == 400
            and error_parameters(response) == ["ldap.hostname"]
            and isinstance(_member(json_body(case), "ldap").get("hostname"), str)
            and not _hostname_matches_in_full(json_body(case)["ldap"]["hostname"])
        ),
        reason=(
            "PATCH .../userSecurity: the spec's ldap.hostname pattern has unanchored alternatives "
            "(^a|b|c?$), so as a JSON Schema pattern (a search) it matches every string; Atlas "
            "validates with Java's String.matches, which must match the whole value (inferred). "
            "A 400 naming ldap.hostname is tolerated only for a hostname the pattern does not "
            "match in full."
        ),
    ),
    Divergence(
        key="pageNum-beyond-int32",
        check="positive_data_acceptance",
        failure=(RejectedPositiveData,),
        operations=frozenset({"listGroups", "listGroupDatabaseUsers", "listGroupDatabaseUserCerts"}),
        applies=lambda case, response, failure: (
            response.status_code == 400
            and error_code(response) == "INVALID_QUERY_PARAMETER"
            and error_parameters(response) == ["pageNum"]
            and all(v.isdigit() and int(v) > 2**31 - 1 for v in sent_query(response).get("pageNum", ["x"]))
        ),
        reason=(
            "Lists: the spec gives pageNum a minimum of 1 and no maximum; Atlas (Java) reads it as a "
            "32-bit int (inferred). A 400 INVALID_QUERY_PARAMETER naming pageNum is tolerated only "
            "for a pageNum above 2147483647."
        ),
    ),
]


for _d in DIVERGENCES:
    assert all(_d.check in cls.checks for cls in _d.failure), _d.key


def documented_divergence(
    failure: Failure, case: Case, response: Response, *, exclude: frozenset[str] = frozenset()
) -> Divergence | None:
    op = operation_id(case)
    for d in DIVERGENCES:
        if d.key in exclude:
            continue
        if d.operations is not None and op not in d.operations:
            continue
        if not isinstance(failure, d.failure):
            continue
        if d.applies(case, response, failure):
            return d
    return None


def filter_failure(context: Any, failure: Failure, case: Case, response: Response) -> bool:
    """schemathesis `filter_failure` hook: keep every failure but the documented divergences."""
    if getattr(failure, "atlas_compensating", False):
        return True
    return documented_divergence(failure, case, response) is None


# ---------------------------------------------------------------------------------------------
# Compensating check: what a dropped failure would otherwise leave unchecked
# ---------------------------------------------------------------------------------------------


def _shadow(response: Response, *, status: int | None = None, content: bytes | None = None) -> Response:
    return Response(
        status_code=response.status_code if status is None else status,
        headers={k: list(v) for k, v in response.headers.items()},
        content=response.content if content is None else content,
        request=response.request,
        elapsed=response.elapsed,
        verify=response.verify,
        message=response.message,
        http_version=response.http_version,
        encoding="utf-8",
    )


def _collect(fn: Callable[[], Any]) -> list[Failure]:
    try:
        fn()
    except FailureGroup as group:
        return list(group.exceptions)
    except Failure as failure:
        return [failure]
    return []


class AtlasShapeViolation(Failure):
    """A response that is not even in Atlas's own (documented-divergent) shape."""

    kind_title = "Response is not in Atlas's shape"


def _violation(case: Case, message: str) -> AtlasShapeViolation:
    return AtlasShapeViolation(operation=case.operation.label, message=message)


def _check_pem(case: Case, text: str) -> list[Failure]:
    pem = re.fullmatch(
        r"(-----BEGIN CERTIFICATE-----\n(?:[A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n)"
        r"(-----BEGIN PRIVATE KEY-----\n(?:[A-Za-z0-9+/=]{1,64}\n)+-----END PRIVATE KEY-----\n)",
        text,
    )
    if pem is None:
        return [_violation(case, f"expected one CERTIFICATE block then one PRIVATE KEY block, got {text[:200]!r}")]
    try:
        cert = x509.load_pem_x509_certificate(pem.group(1).encode())
        key = serialization.load_pem_private_key(pem.group(2).encode(), password=None)
    except ValueError as exc:
        return [_violation(case, f"the PEM does not parse: {exc}")]
    problems = []
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, spki) != cert.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ):
        problems.append("the private key does not match the certificate")
    username = (case.path_parameters or {}).get("username")
    cns = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    if len(cert.subject) != 1 or cns != [username]:
        problems.append(f"subject is {cert.subject.rfc4514_string()!r}, expected CN={username}")
    return [_violation(case, "; ".join(problems))] if problems else []


def _unwrap_envelope(case: Case, response: Response) -> tuple[bytes | None, list[Failure]]:
    """The bare entity of an `envelope=true` success, or the reason it is not in envelope shape."""
    status = response.status_code
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("status") != status:
        return None, [_violation(case, f"envelope=true: expected a JSON object with status {status}")]
    if operation_id(case) in LIST_OPERATIONS:
        return json.dumps({k: v for k, v in body.items() if k != "status"}).encode(), []
    if set(body) != {"content", "status"}:
        return None, [_violation(case, f"envelope=true: expected keys content and status, got {sorted(body)}")]
    return json.dumps(body["content"]).encode(), []


def _validate_as_documented(case: Case, shadow: Response) -> list[Failure]:
    return _collect(lambda: case.operation.validate_response(shadow, case=case))


def atlas_compensating_checks(ctx: Any, response: Response, case: Case) -> bool | None:
    """Checks, in Atlas's shape, what the dropped `DIVERGENCES` failures leave unchecked."""
    op = operation_id(case)
    status = response.status_code
    enveloped = is_enveloped(response) and status != 204  # a 204 stays empty
    content = response.content
    failures: list[Failure] = []
    if enveloped:
        unwrapped, failures = _unwrap_envelope(case, response)
        if unwrapped is None:
            _raise(case, response, failures)
        content = unwrapped

    if op == "createGroup" and status == 201:
        shadow = _shadow(response, status=200, content=content)
        failures += _validate_as_documented(case, shadow)
        failures += _collect(lambda: content_type_conformance(ctx, shadow, case))
        failures += _collect(lambda: response_headers_conformance(ctx, shadow, case))
    elif op == "deleteGroup" and status == 202:
        shadow = _shadow(response, status=204, content=content)
        failures += _collect(lambda: content_type_conformance(ctx, shadow, case))
        failures += _collect(lambda: response_headers_conformance(ctx, shadow, case))
        try:
            empty = json.loads(content) == {}
        except ValueError:
            empty = False
        if not empty:
            failures.append(_violation(case, f"deleteGroup 202: expected the body {{}}, got {content[:200]!r}"))
    elif op == "createGroupDatabaseUserCert" and status == 201:
        if enveloped:
            # `{"content": "<PEM>", "status": 201}`: the content is the JSON string the spec says.
            failures += _validate_as_documented(case, _shadow(response, content=content))
            text = json.loads(content)
        else:
            text = response.content.decode("utf-8", "replace")
        if isinstance(text, str):
            failures += _check_pem(case, text)
    elif enveloped:
        failures += _validate_as_documented(case, _shadow(response, content=content))
    _raise(case, response, failures)
    return None


def _raise(case: Case, response: Response, failures: list[Failure]) -> None:
    """Raises what is left once the other documented divergences are applied."""
    kept = [
        f
        for f in failures
        if documented_divergence(f, case, response, exclude=frozenset({"envelope-wrapped-success"})) is None
    ]
    for failure in kept:
        # Marks it for `filter_failure`: a failure of this check is never a documented divergence.
        failure.atlas_compensating = True  # type: ignore[attr-defined]
    if len(kept) == 1:
        raise kept[0]
    if kept:
        raise FailureGroup(kept, "Atlas-shape checks failed")
