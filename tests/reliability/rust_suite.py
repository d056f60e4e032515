"""The whole Rust test suite (`cargo test --all-targets`), run without cargo (scripts/reliability
calendar, scripts/test's run on another date).

    python tests/reliability/rust_suite.py build LIST
    python tests/reliability/rust_suite.py run LIST [NAME...]

`build` runs `cargo test --locked --all-targets --no-run` and writes the test executables it
built to LIST, one JSON object a line, each with a name such as `dbcerts-server test observe`
(package, kind, target). `run` then runs them as cargo would (from the package's directory,
with `CARGO_MANIFEST_DIR` set), one after the other: all of them, or only those NAMEs. It
prints their output and the sum of their `test result:` lines, and exits non-zero if any
failed (or a NAME is not in LIST).

Why not simply `cargo test` under libfaketime: cargo itself under a clock moved by libfaketime
finds the build out of date and compiles everything again. Building first at the real time and
running the executables under the moved clock tests the same code without that.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULT = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored")


def build(listing: pathlib.Path) -> int:
    cmd = ["cargo", "test", "--locked", "--all-targets", "--no-run", "--message-format=json-render-diagnostics"]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        return proc.returncode
    tests = []
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("profile", {}).get("test") and msg.get("executable"):
            target = msg["target"]
            tests.append({
                "name": f"{pathlib.Path(msg['manifest_path']).parent.name} {target['kind'][0]} {target['name']}",
                "executable": msg["executable"],
                "manifest_dir": str(pathlib.Path(msg["manifest_path"]).parent),
            })
    tests.sort(key=lambda t: t["name"])
    listing.write_text("".join(json.dumps(t) + "\n" for t in tests))
    print(f"{len(tests)} test executables listed in {listing}")
    return 0 if tests else 1


def run(listing: pathlib.Path, names: list[str]) -> int:
    tests = [json.loads(line) for line in listing.read_text().splitlines() if line.strip()]
    if names:
        unknown = set(names) - {t["name"] for t in tests}
        if unknown:
            print(f"not in {listing}: {sorted(unknown)}", file=sys.stderr)
            return 2
        tests = [t for t in tests if t["name"] in names]
    totals = [0, 0, 0]
    failed = []
    for t in tests:
        print(f"     Running {t['name']} ({t['executable']})", flush=True)
        env = dict(os.environ, CARGO_MANIFEST_DIR=t["manifest_dir"])
        proc = subprocess.Popen(
            [t["executable"]], cwd=t["manifest_dir"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )
        seen = None
        for line in proc.stdout:
            sys.stdout.write(line)
            m = RESULT.search(line)
            if m:
                seen = [int(g) for g in m.groups()]
        code = proc.wait()
        sys.stdout.flush()
        if seen:
            totals = [a + b for a, b in zip(totals, seen)]
        if code != 0:
            failed.append(f"{t['name']} (exit {code})")
    passed, failed_tests, ignored = totals
    print(f"\nrust suite: {passed} passed; {failed_tests} failed; {ignored} ignored in {len(tests)} test executables")
    for name in failed:
        print(f"  FAILED {name}")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("build", "run") or (argv[0] == "build" and len(argv) > 2):
        print(__doc__, file=sys.stderr)
        return 2
    listing = pathlib.Path(argv[1])
    return build(listing) if argv[0] == "build" else run(listing, argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
