"""Mutation scores per module from the last `mutmut run` (`make mutation`), as a Markdown table.

A mutant counts as killed when a test failed on it or it timed out; "no tests" means no unit or CLI
test runs that function at all. Run from the repository root, after `mutmut run`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^\s*(xsoar_mt\.[\w.]+?)\.x[_ǁ]\S*: (.+)$")


def scores(results: str) -> dict[str, Counter[str]]:
    """Each module's mutants counted by status (killed, survived, timeout, no tests, ...)."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for line in results.splitlines():
        match = LINE.match(line)
        if match:
            found[match.group(1)][match.group(2).strip()] += 1
    return dict(found)


def table(found: dict[str, Counter[str]]) -> str:
    rows = ["| module | mutants | killed | survived | no tests | score |", "|---|---:|---:|---:|---:|---:|"]
    total: Counter[str] = Counter()
    for module, counts in sorted(found.items()):
        total.update(counts)
        rows.append(_row(module.removeprefix("xsoar_mt."), counts))
    rows.append(_row("**all**", total))
    return "\n".join(rows)


def _row(name: str, counts: Counter[str]) -> str:
    mutants = sum(counts.values())
    killed = counts["killed"] + counts["timeout"]
    score = 100 * killed / mutants if mutants else 0.0
    return f"| {name} | {mutants} | {killed} | {counts['survived']} | {counts['no tests']} | {score:.1f}% |"


def main() -> int:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mutmut"), "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    found = scores(done.stdout)
    if not found:
        print("no mutation results: run `make mutation` first", file=sys.stderr)
        return 1
    print(table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
