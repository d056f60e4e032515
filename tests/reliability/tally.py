"""The test counts in one log of tests/reliability/rust_suite.py or `pytest -q`, on one line
(scripts/reliability's summary).

    python tests/reliability/tally.py LOG

Rust: every executable's `test result:` line summed, and the executables that failed; pytest:
its last summary line (`N passed, M failed, ... in S s`).
"""

from __future__ import annotations

import re
import sys


def tally(text: str) -> str:
    results = re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", text)
    if results:
        passed, failed, ignored = (sum(int(r[k]) for r in results) for k in range(3))
        # rust_suite.py's own count of executables (criterion's bench prints no result line).
        ran = re.search(r"^rust suite: .* in (\d+) test executables$", text, re.MULTILINE)
        executables = ran[1] if ran else len(results)
        out = f"{passed} passed, {failed} failed, {ignored} ignored in {executables} test executables"
        broken = re.findall(r"^  FAILED (.+)$", text, re.MULTILINE)
        if broken:
            out += f"; failed: {', '.join(broken)}"
        return out
    summaries = [
        line.strip("= ")
        for line in text.splitlines()
        if re.search(r"\d+ (passed|failed|errors?)\b.* in [\d.]+s", line)
    ]
    return summaries[-1] if summaries else "no test summary found"


if __name__ == "__main__":
    print(tally(open(sys.argv[1], errors="replace").read()))
