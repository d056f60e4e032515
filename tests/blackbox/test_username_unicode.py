"""MANAGED usernames against an independent Unicode oracle, over every code point of each class
the server must refuse (issue 15, item 3: look-alike and invisible characters).

The oracle is Python's, not the server's: `unicodedata2` (the Unicode Consortium's data at the
server's Unicode version, 18.0.0) for general categories and NFC, and the `regex` module for
`Default_Ignorable_Code_Point`, `White_Space` and `Script=Braille`. The server uses ICU4X.

Refused, each code point on its own in a name of its own (so that every one is shown refused,
not only a name holding many): every Default_Ignorable_Code_Point, every Cc, Cf, Zl and Zp,
every White_Space other than U+0020, every Braille pattern, every code point whose NFC is
something else, and the NFD form of every character with a canonical decomposition (Hangul
syllables sampled). Private-use
(Co) and unassigned (Cn) code points, nearly a million, are refused too; here they are sampled
(each run's ends and every 997th code point, ~2,000 requests), and the Rust test
`dn::tests::every_char_against_independent_tables` checks every one of them. Lone surrogates
(Cs) cannot be sent as UTF-8; as JSON escapes, every one is refused as JSON that does not match.

Accepted: every other assigned code point (~150,000, in names of 511 of them) stays accepted,
so the rules refuse no more than they say; and nothing refused was stored.
"""

from __future__ import annotations

import json
import pathlib
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import regex
import requests
import unicodedata2
from requests.auth import HTTPDigestAuth

from conftest import UNTHROTTLED, V2, _server

UNICODE_VERSION = "18.0.0"
METACHARACTERS = set(',+"\\<>;=')
DI = regex.compile(r"\p{Default_Ignorable_Code_Point}")
WHITE_SPACE = regex.compile(r"\p{White_Space}")
BRAILLE = regex.compile(r"\p{Script=Braille}")
SAMPLE_STRIDE = 997
BATCH = 511  # "x" + char pairs per accepted name, + a final "x": 1,023 characters
WORKERS = 4


def _is_nfc(s: str) -> bool:
    return unicodedata2.normalize("NFC", s) == s


def _code_points():
    """Every Unicode scalar value (surrogates excluded: UTF-8 cannot carry them)."""
    for cp in range(0x110000):
        if not 0xD800 <= cp <= 0xDFFF:
            yield chr(cp)


def _classes() -> dict[str, list[str]]:
    """The oracle's partition of the code space into what the server must refuse and why."""
    assert unicodedata2.unidata_version == UNICODE_VERSION, unicodedata2.unidata_version
    out: dict[str, list[str]] = {
        k: []
        for k in (
            "Default_Ignorable_Code_Point", "Cc", "Cf", "Zl", "Zp", "White_Space", "Braille",
            "not NFC", "Co", "Cn", "accepted",
        )
    }
    for c in _code_points():
        cat = unicodedata2.category(c)
        if DI.match(c):
            out["Default_Ignorable_Code_Point"].append(c)
        elif cat in ("Cc", "Cf", "Zl", "Zp", "Co", "Cn"):
            out[cat].append(c)
        elif WHITE_SPACE.match(c) and c != " ":
            out["White_Space"].append(c)
        elif BRAILLE.match(c):
            out["Braille"].append(c)
        elif not _is_nfc(c):
            out["not NFC"].append(c)
        elif c not in METACHARACTERS:
            out["accepted"].append(c)
    return out


CLASSES = _classes()


def _sample(chars: list[str]) -> list[str]:
    """The first and last code point of every run of consecutive ones, and every 997th."""
    picked = []
    for i, c in enumerate(chars):
        first = i == 0 or ord(chars[i - 1]) != ord(c) - 1
        last = i == len(chars) - 1 or ord(chars[i + 1]) != ord(c) + 1
        if first or last or i % SAMPLE_STRIDE == 0:
            picked.append(c)
    return picked


@pytest.fixture(scope="module")
def userver(tmp_path_factory):
    """A server that lets one project hold every accepted name of this module."""
    root = tmp_path_factory.mktemp("unicode")
    config = pathlib.Path(tempfile.mkdtemp(dir=root)) / "limits.toml"
    settings = {**UNTHROTTLED, "max-database-users-per-project": 100_000}
    config.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    yield from _server(root, "--config", str(config), "--key-algorithm", "ecdsa-p256", "--key-pool-size", "2")


@pytest.fixture(scope="module")
def gid(userver):
    return userver.create_project()


class _Client:
    """One keep-alive Digest session per worker thread."""

    def __init__(self, server) -> None:
        self.server = server
        self.local = threading.local()

    def post_user(self, gid: str, name: str) -> requests.Response:
        s = getattr(self.local, "session", None)
        if s is None:
            s = self.local.session = requests.Session()
            s.auth = HTTPDigestAuth(self.server.public_key, self.server.private_key)
        body = {
            "databaseName": "$external",
            "groupId": gid,
            "roles": [{"databaseName": "admin", "roleName": "readAnyDatabase"}],
            "username": name,
            "x509Type": "MANAGED",
        }
        return s.post(
            self.server.url(f"/groups/{gid}/databaseUsers"),
            json=body,
            headers={"Accept": V2},
            timeout=60,
        )


def _refusals(server, gid: str, names: list[str]) -> list[str]:
    """Creates each name; returns a description of every answer other than Atlas's refusal,
    and of any user that was stored nevertheless."""
    client = _Client(server)
    before = _user_count(server, gid)

    def one(name: str) -> str | None:
        r = client.post_user(gid, name)
        if r.status_code != 400:
            return f"{ascii(name)}: {r.status_code} {r.text[:200]}"
        body = r.json()
        if "\x00" in name:
            # NUL never reaches the username rules: no JSON string dbcerts reads may hold one.
            expected = ("INVALID_JSON", [])
        else:
            expected = ("ATLAS_MANAGED_X509_NAME_INVALID", [name])
        if (body.get("errorCode"), body.get("parameters")) != expected:
            return f"{ascii(name)}: {r.text[:200]}"
        return None

    with ThreadPoolExecutor(WORKERS) as pool:
        problems = [p for p in pool.map(one, names) if p]
    after = _user_count(server, gid)
    if after != before:
        problems.append(f"{after - before} users stored")
    return problems


def _user_count(server, gid: str) -> int:
    r = server.call("GET", f"/groups/{gid}/databaseUsers?itemsPerPage=1&includeCount=true")
    assert r.status_code == 200, r.text
    return r.json()["totalCount"]


REFUSED_EXHAUSTIVELY = ["Default_Ignorable_Code_Point", "Cc", "Cf", "Zl", "Zp", "White_Space", "Braille"]


def test_the_oracle_agrees_with_the_review():
    """Every code point the hostile review found accepted falls in a class refused here."""
    refused = set().union(*(CLASSES[k] for k in REFUSED_EXHAUSTIVELY))
    for cp in (0x034F, 0xE0100, 0x17B4, 0x180B, 0x1D173, 0x2800, 0x2028, 0x2029):
        assert chr(cp) in refused, hex(cp)
    assert len(CLASSES["Default_Ignorable_Code_Point"]) > 4000
    assert len(CLASSES["Cn"]) > 790_000 and len(CLASSES["Co"]) == 137_468


@pytest.mark.parametrize("cls", REFUSED_EXHAUSTIVELY)
def test_every_code_point_of_the_class_is_refused(userver, gid, cls):
    chars = CLASSES[cls]
    assert chars
    # Inside a name, so that no other rule (leading or trailing space) answers for it.
    problems = _refusals(userver, gid, [f"al{c}ice" for c in chars])
    assert not problems, f"{len(problems)} of {len(chars)} {cls} accepted or answered otherwise: {problems[:20]}"


def test_every_code_point_whose_nfc_differs_is_refused(userver, gid):
    chars = CLASSES["not NFC"]
    assert len(chars) > 1000  # singletons (U+212B ANGSTROM SIGN), CJK compatibility ideographs, ...
    problems = _refusals(userver, gid, [f"al{c}ice" for c in chars])
    assert not problems, f"{len(problems)} of {len(chars)}: {problems[:20]}"


def test_every_decomposed_form_is_refused(userver, gid):
    """`café` composed is a name; `cafe` + U+0301 is refused, not a second user. The NFD of
    every character with a canonical decomposition, but Hangul syllables: their composition is
    one arithmetic rule (The Unicode Standard, 3.12), so every 11th syllable is sent, which
    covers each of the 19 leading consonants, 21 vowels and 28 trailing forms."""
    names, hangul = [], []
    for c in CLASSES["accepted"]:
        d = unicodedata2.normalize("NFD", c)
        if d == c:
            continue
        if 0xAC00 <= ord(c) <= 0xD7A3:
            index = ord(c) - 0xAC00
            if index % 11:
                continue
            hangul.append(index)
        names.append(f"x{d}x")
    assert {i // (21 * 28) for i in hangul} == set(range(19))
    assert {i // 28 % 21 for i in hangul} == set(range(21))
    assert {i % 28 for i in hangul} == set(range(28))
    assert len(names) - len(hangul) > 900
    assert not any(_is_nfc(n) for n in names)
    problems = _refusals(userver, gid, names)
    assert not problems, f"{len(problems)} of {len(names)}: {problems[:20]}"


@pytest.mark.parametrize("cls", ["Co", "Cn"])
def test_private_use_and_unassigned_are_refused(userver, gid, cls):
    chars = _sample(CLASSES[cls])
    problems = _refusals(userver, gid, [f"al{c}ice" for c in chars])
    assert not problems, f"{len(problems)} of {len(chars)} {cls}: {problems[:20]}"


def test_lone_surrogates_are_refused(userver, gid):
    """U+D800..U+DFFF (Cs) are not characters: as JSON escapes they are not text at all."""
    client = _Client(userver)
    count = _user_count(userver, gid)

    def one(cp: int) -> str | None:
        raw = (
            '{"databaseName":"$external","groupId":"%s","roles":[{"databaseName":"admin",'
            '"roleName":"readAnyDatabase"}],"username":"al\\u%04xice","x509Type":"MANAGED"}' % (gid, cp)
        )
        s = getattr(client.local, "session", None)
        if s is None:
            s = client.local.session = requests.Session()
            s.auth = HTTPDigestAuth(userver.public_key, userver.private_key)
        r = s.post(
            userver.url(f"/groups/{gid}/databaseUsers"),
            data=raw.encode(),
            headers={"Accept": V2, "Content-Type": "application/json"},
            timeout=60,
        )
        if r.status_code != 400 or r.json().get("errorCode") not in ("INVALID_JSON", "MALFORMED_JSON"):
            return f"U+{cp:04X}: {r.status_code} {r.text[:200]}"
        return None

    with ThreadPoolExecutor(WORKERS) as pool:
        problems = [p for p in pool.map(one, range(0xD800, 0xE000)) if p]
    assert not problems, problems[:20]
    assert _user_count(userver, gid) == count


def test_every_other_assigned_code_point_stays_accepted(userver, gid):
    """The rules refuse no more than they say: every assigned character outside the refused
    classes (and the eight DN metacharacters) is accepted, 511 to a name, each after an `x`
    (or another base letter where `x` + the character would compose) so that the name is NFC."""
    names, pairs = [], []
    for c in CLASSES["accepted"]:
        base = next(b for b in "xqʔ" if _is_nfc(b + c))
        pairs.append(base + c)
        if len(pairs) == BATCH:
            names.append("".join(pairs) + "x")
            pairs = []
    if pairs:
        names.append("".join(pairs) + "x")
    assert all(_is_nfc(n) for n in names)
    assert sum(len(n) for n in names) > 2 * 150_000
    before = _user_count(userver, gid)
    client = _Client(userver)

    def one(name: str) -> str | None:
        r = client.post_user(gid, name)
        return None if r.status_code == 201 else f"{ascii(name[:40])}...: {r.status_code} {r.text[:300]}"

    with ThreadPoolExecutor(WORKERS) as pool:
        problems = [p for p in pool.map(one, names) if p]
    assert not problems, problems[:5]
    assert _user_count(userver, gid) == before + len(names)


def test_a_stored_name_the_rules_refuse_gets_no_certificate(userver, gid):
    """A MANAGED user stored before these rules (here: written to the store directly) whose
    name they refuse gets `ATLAS_MANAGED_X509_NAME_INVALID` from certificate creation, and no
    certificate."""
    template = f"tmpl-{uuid.uuid4().hex[:8]}"
    userver.create_user(gid, template)
    name = "alice\U000E0100"
    userver.sql(
        "INSERT INTO database_users (project_id, database_name, username, x509_type, created, doc)"
        " SELECT project_id, database_name, ?, x509_type, created, doc FROM database_users"
        " WHERE project_id = ? AND username = ?",
        name, gid, template,
    )
    r = userver.call(
        "POST", f"/groups/{gid}/databaseUsers/alice%F3%A0%84%80/certs", json={"monthsUntilExpiration": 1}
    )
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == "ATLAS_MANAGED_X509_NAME_INVALID"
    assert r.json()["parameters"] == [name]
    assert int(userver.sql("SELECT COUNT(*) FROM certificates WHERE username = ?", name)[0][0]) == 0
    # The same request for the template user issues: the refusal is the name's.
    r = userver.call("POST", f"/groups/{gid}/databaseUsers/{template}/certs", json={"monthsUntilExpiration": 1})
    assert r.status_code == 201, r.text
