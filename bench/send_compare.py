"""Accepted sends/s of seed 000's request for two versions of posthouse, in alternating
turns of the same window: the way to compare old and new on a busy machine.

Runs ``bench/spine.py --only a --repeat 1`` once per turn and version; the other version
is a source tree given by path (e.g. ``git archive main | tar -x -C /tmp/base``), put
first on ``PYTHONPATH`` of every process spine.py starts, so its own migrations build its
own schema. Prints every turn, then each version's median and the ratio new/old.

    .venv/bin/python bench/send_compare.py /tmp/base/src [--turns 3] [--duration 15]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

SPINE = Path(__file__).with_name("spine.py")
_LINE = re.compile(
    r"\(a\) run 1:\s+([\d.]+) accepted/s\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms.*"
    r"cpu/send: api ([\d.]+) ms, postgres ([\d.]+) ms.*load ([\d. ]+)"
)
FIELDS = ("accepted/s", "p50 ms", "p99 ms", "api cpu ms/send", "pg cpu ms/send")


def turn(source: str | None, args: argparse.Namespace) -> tuple[float, ...]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if source:
        env["PYTHONPATH"] = source
    result = subprocess.run(
        [
            sys.executable, str(SPINE), "--only", "a", "--repeat", "1",
            "--duration", str(args.duration), "--database", args.database,
        ],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = _LINE.search(result.stdout)
    if found is None:
        sys.exit(f"no (a) figure in spine.py's output:\n{result.stdout}\n{result.stderr}")
    print(f"  {'old' if source else 'new'}: {found.group(0).split(':', 1)[1].strip()}")
    return tuple(float(found.group(i)) for i in range(1, 6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old_source", help="the src/ directory of the old version")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--database", default="posthouse_bench16_send")
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, ...]]] = {"old": [], "new": []}
    for number in range(args.turns):
        print(f"turn {number + 1}")
        # Alternate which goes first, so a trend in the machine's load favours neither.
        order = ("old", "new") if number % 2 == 0 else ("new", "old")
        for version in order:
            runs[version].append(turn(args.old_source if version == "old" else None, args))
    print(f"\n{'median':<18} {'old':>10} {'new':>10} {'new/old':>8}")
    for index, name in enumerate(FIELDS):
        old = statistics.median(r[index] for r in runs["old"])
        new = statistics.median(r[index] for r in runs["new"])
        print(f"{name:<18} {old:10.2f} {new:10.2f} {new / old:8.3f}")


if __name__ == "__main__":
    main()
