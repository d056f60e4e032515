"""Loaded by every Python process that scripts/at-date starts (it puts this directory first on
PYTHONPATH); nothing else loads it.

scripts/at-date moves the wall clock with libfaketime and leaves the monotonic clock alone:
Python's lock and event timeouts wait on the real monotonic clock (sem_clockwait, which
libfaketime does not intercept), so a moved monotonic clock would make them wait for months.
But libfaketime 0.9.10 also shifts the absolute CLOCK_MONOTONIC deadline of clock_nanosleep,
which is what `time.sleep` uses, by the wall clock's offset, and the call fails with EINVAL.
So here `time.sleep` waits for a relative timeout in `select`, which libfaketime passes on
unchanged, measured on the same monotonic clock.
"""

import os
import select
import time

if os.environ.get("FAKETIME") and os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1":
    _monotonic = time.monotonic

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = _monotonic() + seconds
        while (left := deadline - _monotonic()) > 0:
            select.select([], [], [], left)

    _sleep.__doc__ = time.sleep.__doc__
    time.sleep = _sleep
