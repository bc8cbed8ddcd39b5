"""`./build.sh test [quick]`: the suite in two passes, then the ten slowest tests of the run.

  1. every test not marked `timing`, spread over worker processes (pytest-xdist, one module per
     worker at a time: `--dist loadfile`), since most of the suite waits on a broker, a socket
     or a subprocess rather than on the CPU;
  2. the tests marked `timing` (they assert a bound on a delay or compare round trips), one at a
     time with nothing else running, so another test's load never decides whether they pass.

`quick` keeps only what needs no Hearth of its own, streams no audio in real time and bounds no
delay (markers `own_hearth`, `realtime`, `timing`; tests/conftest.py fails a test that starts a
Hearth or streams without its mark): one parallel pass. A timing test needs the machine to itself,
so it cannot answer quickly; it runs in the whole suite.
Anything after `quick` (or any arguments at all without it) goes to pytest as given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = "not image and not own_hearth and not realtime and not timing"
FULL = "not image"


def workers() -> int:
    """Four per two cores: the tests mostly wait (measured: docs in the closing note of issue 25)."""
    return int(os.environ.get("HEARTH_TEST_WORKERS", 0)) or max(2, 2 * (os.cpu_count() or 2))


def run(args: list[str], junit: Path) -> int:
    cmd = [sys.executable, "-m", "pytest", f"--junitxml={junit}", "-p", "no:cacheprovider", *args]
    print("==> " + " ".join(cmd[2:]), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def slowest(junits: list[Path], count: int = 10) -> list[tuple[float, str]]:
    times = []
    for junit in junits:
        if junit.exists():
            for case in ET.parse(junit).getroot().iter("testcase"):
                name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
                times.append((float(case.get("time") or 0), name))
    return sorted(times, reverse=True)[:count]


def main(argv: list[str]) -> int:
    quick = bool(argv) and argv[0] == "quick"
    if quick:
        argv = argv[1:]
    if argv and not quick:          # a module, a -k, ...: pytest as given
        return subprocess.run([sys.executable, "-m", "pytest", *argv], cwd=ROOT).returncode
    select = QUICK if quick else FULL
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hearth-tiers-") as tmp:
        parallel, alone = Path(tmp) / "parallel.xml", Path(tmp) / "timing.xml"
        keep = ROOT / "tests" / "artifacts"          # each pass's per-test times, for a look afterwards
        first = run(["-m", f"({select}) and not timing", "-n", str(workers()), "--dist", "loadfile", *argv], parallel)
        second = run(["-m", f"({select}) and timing", *argv], alone)
        print(f"\n==> ten slowest tests of this run ({'quick tier' if quick else 'whole suite'}, "
              f"{time.monotonic() - t0:.0f} s in all):")
        for seconds, name in slowest([parallel, alone]):
            print(f"{seconds:8.1f} s  {name}")
        keep.mkdir(exist_ok=True)
        for junit in (parallel, alone):
            if junit.exists():
                shutil.copy(junit, keep / f"tiers-{'quick' if quick else 'whole'}-{junit.name}")
    # 5: no tests collected in one pass (e.g. a quick run with no timing test) is not a failure
    codes = [c for c in (first, second) if c != 5]
    return max(codes, default=5)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
