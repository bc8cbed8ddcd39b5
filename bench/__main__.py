"""`./build.sh bench`: run every benchmark and write docs/benchmarks.md from this one run.

Sections: voice (this room), satellites, firmware, abuse (when their modules are present); the image
figures come from the image tier's own run (docs/benchmarks-image.md) and are folded in as they are.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import os
import platform
import sys

import psutil

from bench.common import ROOT

SECTIONS = ["bench.voice", "bench.accuracy", "bench.satellites", "bench.firmware", "bench.abuse", "bench.helpers"]
INCLUDED = ["benchmarks-image.md"]


def main() -> int:
    p = argparse.ArgumentParser(prog="./build.sh bench")
    p.add_argument("only", nargs="*", help="run only these sections (voice, accuracy, satellites, firmware, abuse, helpers); "
                   "the others keep the figures of their last run")
    p.add_argument("--rounds", type=int, default=3, help="rounds of a section's interleaved sweep (where it has one)")
    args = p.parse_args()
    for name in SECTIONS:
        short = name.split(".")[1]
        if args.only and short not in args.only:
            continue
        module = importlib.import_module(name)
        print(f"bench: {short} ...", file=sys.stderr, flush=True)
        collected: list[str] = []
        # a section's run() returns its markdown, or hands it to a report callback
        params = inspect.signature(module.run).parameters
        extra = {"rounds": args.rounds} if "rounds" in params else {}
        result = module.run(collected.append, **extra) if params else module.run()
        text = result if isinstance(result, str) else "\n".join(collected)
        (ROOT / "docs" / f"benchmarks-{short}.md").write_text(text.rstrip() + "\n")
    assemble()
    print((ROOT / "docs" / "benchmarks.md").read_text())
    return 0


def assemble() -> None:
    """docs/benchmarks.md from every section's latest run (each section file says when and how)."""
    parts = [
        "# Benchmarks",
        "",
        f"Written by `./build.sh bench` on {datetime.date.today()} on a machine with "
        f"{psutil.cpu_count()} cores and {psutil.virtual_memory().total / 2**30:.0f} GiB "
        f"({platform.processor() or platform.machine()}), CPU only. Figures are medians unless named; "
        "these machines are noisy, so every comparison runs both sides in the same run, taking turns, and a "
        "section says the machine's load average during its run (other work on the machine). Each section "
        "was written by its own latest run, with the method next to its tables; targets a run missed say "
        "**missed**, and every run's figures are kept in `docs/benchmarks/` (JSON). "
        "`./build.sh bench voice` (or satellites, firmware, abuse) reruns one section; the image section is "
        "written by the image tier itself (`./build.sh test-image`) and folded in unchanged.",
        "",
    ]
    for short in [n.split(".")[1] for n in SECTIONS] + [i.removeprefix("benchmarks-").removesuffix(".md") for i in INCLUDED]:
        path = ROOT / "docs" / f"benchmarks-{short}.md"
        if path.exists():
            parts.append(path.read_text().rstrip() + "\n")
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(parts).rstrip() + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
