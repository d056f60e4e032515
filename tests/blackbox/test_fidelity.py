"""Fidelity to MongoDB's contract, from the project's own material.

tests/fidelity/atlas-operations.json records, in this project's own format, what MongoDB's
specification says of each Atlas operation dbcerts implements: method and path, statuses,
required request attributes and enumerated values. This test derives the same facts from
dbcerts' own OpenAPI document (docs/openapi.json, which the server serves) and lists every
difference as a stable id, such as `createGroup status 200 missing`. Each id must be a row of
the table in docs/COMPATIBILITY.md, section "Differences from MongoDB's specification", and each
row there must still be a difference: an undocumented difference fails, and so does a stale row.
"""

from __future__ import annotations

import json
import re

from conftest import ROOT

FACTS = ROOT / "tests" / "fidelity" / "atlas-operations.json"
DOCUMENT = ROOT / "docs" / "openapi.json"
COMPATIBILITY = ROOT / "docs" / "COMPATIBILITY.md"
SECTION = "## Differences from MongoDB's specification"


def _resolve(doc: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = doc["components"]["schemas"][node["$ref"].split("/")[-1]]
    return node


def _walk(doc: dict, schema: dict, prefix: str, required: set[str], enums: dict[str, list[str]]) -> None:
    """Required attributes and enumerations of a request schema, dotted, read-only ones left out."""
    schema = _resolve(doc, schema)
    if schema.get("type") == "array":
        _walk(doc, schema.get("items", {}), prefix, required, enums)
        return
    props = schema.get("properties", {})
    for name in schema.get("required", []):
        if not _resolve(doc, props.get(name, {})).get("readOnly"):
            required.add(prefix + name)
    for name, prop in props.items():
        resolved = _resolve(doc, prop)
        if resolved.get("readOnly"):
            continue
        if "enum" in resolved:
            enums[prefix + name] = sorted(resolved["enum"])
        if resolved.get("type") in ("object", "array") or "properties" in resolved:
            _walk(doc, prop, prefix + name + ".", required, enums)


def dbcerts_facts() -> dict[tuple[str, str], dict]:
    doc = json.loads(DOCUMENT.read_text())
    facts = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            required: set[str] = set()
            enums: dict[str, list[str]] = {}
            body = op.get("requestBody")
            if body:
                (media,) = body["content"].values()
                _walk(doc, media["schema"], "", required, enums)
            facts[(method.upper(), path)] = {
                "operation": op["operationId"],
                "statuses": sorted(int(s) for s in op["responses"]),
                "requestRequired": sorted(required),
                "requestEnums": enums,
            }
    return facts


def differences() -> list[str]:
    atlas = json.loads(FACTS.read_text())["operations"]
    ours = dbcerts_facts()
    found = []
    for op in atlas:
        name = op["operation"]
        mine = ours.get((op["method"], op["path"]))
        if mine is None:
            found.append(f"{name} operation missing")
            continue
        if mine["operation"] != name:
            found.append(f"{name} operationId {mine['operation']}")
        for status in sorted(set(op["statuses"]) - set(mine["statuses"])):
            found.append(f"{name} status {status} missing")
        for status in sorted(set(mine["statuses"]) - set(op["statuses"])):
            found.append(f"{name} status {status} extra")
        for field in sorted(set(op["requestRequired"]) - set(mine["requestRequired"])):
            found.append(f"{name} required {field} missing")
        for field in sorted(set(mine["requestRequired"]) - set(op["requestRequired"])):
            found.append(f"{name} required {field} extra")
        for field in sorted(set(op["requestEnums"]) | set(mine["requestEnums"])):
            theirs, own = set(op["requestEnums"].get(field, [])), set(mine["requestEnums"].get(field, []))
            if field not in mine["requestEnums"]:
                found.append(f"{name} enum {field} missing")
                continue
            if field not in op["requestEnums"]:
                found.append(f"{name} enum {field} extra")
                continue
            for value in sorted(theirs - own):
                found.append(f"{name} enum {field} {value} missing")
            for value in sorted(own - theirs):
                found.append(f"{name} enum {field} {value} extra")
    return found


def documented() -> list[str]:
    text = COMPATIBILITY.read_text()
    assert SECTION in text, f"docs/COMPATIBILITY.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)


def test_the_facts_cover_the_x509_operations():
    atlas = json.loads(FACTS.read_text())["operations"]
    names = [op["operation"] for op in atlas]
    assert len(names) == len(set(names)) == 14, names
    for op in atlas:
        assert op["path"].startswith("/api/atlas/v2/"), op
        assert op["method"] in ("GET", "POST", "PATCH", "DELETE"), op
        assert op["statuses"] and all(100 <= s < 600 for s in op["statuses"]), op


def test_every_difference_from_mongodb_is_documented():
    found = differences()
    listed = documented()
    assert len(listed) == len(set(listed)), "a difference is listed twice in docs/COMPATIBILITY.md"
    undocumented = [d for d in found if d not in listed]
    stale = [d for d in listed if d not in found]
    assert not undocumented, (
        "differences from MongoDB's specification not listed in docs/COMPATIBILITY.md "
        f"({SECTION!r}): {undocumented}"
    )
    assert not stale, f"docs/COMPATIBILITY.md lists differences that no longer exist: {stale}"


def test_the_server_serves_the_committed_document(server):
    """Over a real socket and without credentials, the running binary serves docs/openapi.json
    byte for byte (what schemathesis and this test read)."""
    import requests

    r = requests.get(f"{server.root}/api/dbcerts/v1/openapi.json", timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == DOCUMENT.read_bytes()
