"""`make bench`: planning time by deployment size, CLI start-up, and what the CLI imports.

Writes bench/results.json (figures) and bench/RESULTS.md (the same, to read). Planning is timed on
generated inventories (tests/inventories.py) of 10 to 5,000 servers, every server on 6.10 and the
target 6.12, so every plan has two one-release hops. Start-up is the median wall time of `xsoar-mt
--help` in a fresh process, against a bare `python -c pass`. When bench/fleet_bench.py exists, its
`measure()` runs too and its figures are stored under "fleet". bench/readability_bench.py counts the
lines an operator reads, piped: the 40-group plan and preflight on 42 fleet servers ("readability").
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from tests.inventories import fleet  # noqa: E402  # the repo root must be importable first
from xsoar_mt.planner import plan_upgrade  # noqa: E402

PLANNER_NOTE = (
    "The planner was profiled and sped up when this benchmark was written: commands formatted once per "
    "release instead of once per step, enum members looked up once, and `Step` built without one "
    "`object.__setattr__` per field. Before and after, in one process on 1,000 servers (fastest of 20): "
    "HA mix 56 -> 33 ms, DR mix 77 -> 47 ms (about 40% less). Most of what remains is building ~10,000 "
    "`Step` objects and their ids. Reading the inventory uses libyaml when PyYAML has it (7x faster)."
)
SIZES = (10, 100, 1_000, 5_000)
MIXES = {"ha-elasticsearch": "elasticsearch", "dr-bolt": "bolt"}
START, TARGET = "6.10", "6.12"
STARTUP_RUNS = 10
HEAVY = ("fabric", "paramiko", "invoke", "cryptography", "pydantic")


def timed_ms(run: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        run()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def median_ms(run: Callable[[], object], times: int) -> float:
    return round(statistics.median(timed_ms(run, times)), 2)


def spread(samples: list[float]) -> dict[str, float]:
    """The median, and the fastest run: on a busy machine the fastest is the better estimate of the cost."""
    return {"plan_ms": round(statistics.median(samples), 2), "plan_min_ms": round(min(samples), 2)}


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load} when the benchmark started"
    )


def planning() -> list[dict[str, Any]]:
    rows = []
    for mix, database in MIXES.items():
        for size in SIZES:
            inventory = fleet(size, database=database, release=START)
            versions = inventory.versions()
            plan = plan_upgrade(inventory, versions, TARGET)  # warm-up, and the plan's size
            runs = 15 if size <= 1_000 else 5
            rows.append(
                {
                    "mix": mix,
                    "servers": len(inventory.servers),
                    "groups": len(inventory.groups),
                    "steps": plan.step_count,
                    "hops": list(plan.hops),
                    **spread(timed_ms(functools.partial(plan_upgrade, inventory, versions, TARGET), runs)),
                    "runs": runs,
                }
            )
    return rows


def loading() -> list[dict[str, Any]]:
    """Reading and validating the inventory file, which `upgrade plan` also pays for."""
    import yaml

    from tests.inventories import fleet_specs, inventory_dict
    from xsoar_mt.inventory import parse_inventory

    rows = []
    for size in SIZES:
        main, hosts = fleet_specs(size, release=START)
        text = yaml.safe_dump(inventory_dict("elasticsearch", main, hosts), sort_keys=False)
        rows.append(
            {
                "servers": size,
                "yaml_lines": text.count("\n"),
                "load_ms": median_ms(functools.partial(parse_inventory, text, "bench.yaml"), 5),
            }
        )
    return rows


def startup() -> dict[str, Any]:
    script = Path(sys.executable).with_name("xsoar-mt")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "xsoar_mt"]

    def run(cmd: list[str]) -> Callable[[], object]:
        return lambda: subprocess.run(cmd, capture_output=True, check=True, cwd=REPO)

    run([sys.executable, "-c", "pass"])()  # warm the file cache before timing
    run([*cli, "--help"])()
    return {
        "runs": STARTUP_RUNS,
        "python_pass_ms": median_ms(run([sys.executable, "-c", "pass"]), STARTUP_RUNS),
        "python_no_site_ms": median_ms(run([sys.executable, "-S", "-c", "pass"]), STARTUP_RUNS),
        "xsoar_mt_help_ms": median_ms(run([*cli, "--help"]), STARTUP_RUNS),
        "xsoar_mt_plan_example_ms": median_ms(
            run([*cli, "upgrade", "plan", "-i", "inventory.example.yaml", "--to", TARGET, "-o", "json"]),
            STARTUP_RUNS,
        ),
        "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cli)) + " --help",
    }


SCALING_RUNS = 9


def _child_run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """One whole process, output piped: (wall ms, CPU ms of the process: user + system)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, env=env)
    wall = (time.perf_counter() - began) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def _paired(commands: dict[int, list[str]], env: dict[str, str]) -> dict[str, Any]:
    """SCALING_RUNS pairs (10 servers, then 1,000): the median of each, and the median of the pairs'
    ratios, for wall time and for CPU time (the steadier figure on a shared machine)."""
    for command in commands.values():
        _child_run(command, env)  # warm the file cache (and, when allowed, write the bytecode) first
    pairs = [(_child_run(commands[10], env), _child_run(commands[1_000], env)) for _ in range(SCALING_RUNS)]
    out: dict[str, Any] = {}
    for index, figure in ((0, "wall"), (1, "cpu")):
        small, large = [p[0][index] for p in pairs], [p[1][index] for p in pairs]
        out[f"plan_10_{figure}_ms"] = round(statistics.median(small), 1)
        out[f"plan_1000_{figure}_ms"] = round(statistics.median(large), 1)
        out[f"{figure}_ratio"] = round(statistics.median(b / a for a, b in zip(small, large, strict=True)), 2)
    return out


def plan_scaling() -> dict[str, Any]:
    """`upgrade plan` as whole processes on the generated 10- and 1,000-server inventories (HA mix), output
    piped, paired runs. A process's fixed cost (interpreter, imports) is in both; the ratio shows what
    the size adds.

    Twice: with xsoar_mt's bytecode compiled (an installed tool: pip compiles it), and with none, each
    module compiled from source on every start (a checkout run with PYTHONDONTWRITEBYTECODE=1). Without
    the cache the fixed cost is larger, so the same size cost gives a smaller ratio: both are shown."""
    import compileall
    import shutil
    import tempfile

    import yaml

    from tests.inventories import fleet_specs, inventory_dict

    script = Path(sys.executable).with_name("xsoar-mt")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "xsoar_mt"]
    package = REPO / "xsoar_mt"
    with tempfile.TemporaryDirectory() as tmp:
        commands = {}
        for size in (10, 1_000):
            main, hosts = fleet_specs(size, release=START)
            path = Path(tmp) / f"inventory-{size}.yaml"
            path.write_text(yaml.safe_dump(inventory_dict("elasticsearch", main, hosts), sort_keys=False))
            commands[size] = [*cli, "upgrade", "plan", "-i", str(path), "--to", TARGET, "--state-dir", tmp]
        for cache in package.rglob("__pycache__"):
            shutil.rmtree(cache)
        uncached = _paired(commands, {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        compileall.compile_dir(package, quiet=1)
        cached = _paired(commands, {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    return {
        "runs": SCALING_RUNS,
        "bytecode_cached": cached,
        "no_bytecode_cache": uncached,
        "command": "xsoar-mt upgrade plan -i INVENTORY --to " + TARGET + " (output piped)",
    }


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_times(args: list[str]) -> dict[str, Any]:
    """`python -X importtime -m xsoar_mt ARGS`: the slowest imports, the total, and any SSH library."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "xsoar_mt", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    rows = []
    for line in done.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            rows.append(
                {
                    "module": module,
                    "self_us": int(self_us),
                    "cumulative_us": int(cumulative_us),
                    "depth": len(indent) // 2,
                }
            )
    top_level = [r for r in rows if r["depth"] == 0]
    heavy = sorted({r["module"] for r in rows if r["module"].split(".")[0] in HEAVY})
    return {
        "command": "python -X importtime -m xsoar_mt " + " ".join(args),
        "exit_code": done.returncode,
        "modules": len(rows),
        "total_ms": round(sum(r["cumulative_us"] for r in top_level) / 1000, 1),
        "slowest": sorted(rows, key=lambda r: -r["cumulative_us"])[:10],
        "ssh_libraries_imported": heavy,
    }


def fleet_figures() -> dict[str, Any]:
    """The benchmarks that need the SSH fleet: its own start and stop, `upgrade run`, preflight, and
    installer delivery in upload mode."""
    sys.path.insert(0, str(BENCH))
    import delivery_bench
    import fleet_bench
    import preflight_bench
    import prepare_bench
    import run_bench

    return {
        "fleet": fleet_bench.measure(),
        "upgrade run": run_bench.measure(),
        "preflight": preflight_bench.measure(),
        "installer delivery (upload mode)": delivery_bench.measure(),
        prepare_bench.TITLE: prepare_bench.measure(),
    }


def readability() -> dict[str, Any]:
    """Lines an operator reads, piped: the 40-group plan and preflight on 42 fleet servers."""
    sys.path.insert(0, str(BENCH))
    import readability_bench

    return readability_bench.measure()


RUN_NOTE = """\
Reading the `upgrade run` figures: the critical path is the sum of the simulated install times that must
happen one after another. Everything above it is per-step work: SSH commands (stop, launch, polls, version,
start, health), each costing the fleet `fleet_seconds_per_command` on this 2-core machine, where the
simulated servers' stand-ins and the tool share the CPU. A real installer runs for minutes, so the same
fixed cost is a far smaller share there.

Reading the delivery figures: one local HTTPS download from a stub on 127.0.0.1, then SFTP uploads and
the server's sha256 check, to one server and then to several at once. On loopback the limit is CPU
(paramiko's SSH in Python, sshd, sha256 at both ends) shared by 2 cores, so the aggregate rate of
concurrent uploads is what to read; over a real network the link is usually the limit. Larger SSH
windows and packets were tried and changed nothing (71.9 vs 71.7 MiB/s for one 128 MiB upload)."""


def markdown(results: dict[str, Any]) -> str:
    out = ["# Benchmark results", "", f"Made by `make bench` (bench/run.py) on {results['machine']}.", ""]
    out += [
        "## Planning",
        "",
        f"`plan_upgrade` from {START} to {TARGET} (two one-release hops), median of the runs shown.",
        "",
    ]
    out += [
        "| mix | servers | groups | steps | median (ms) | fastest (ms) | runs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    out += [
        f"| {r['mix']} | {r['servers']:,} | {r['groups']:,} | {r['steps']:,} | {r['plan_ms']} "
        f"| {r['plan_min_ms']} | {r['runs']} |"
        for r in results["planning"]
    ]
    s = results["startup"]
    out.append("")
    for r in results["planning"]:
        if r["servers"] == 1_000:
            verdict = "less" if r["plan_ms"] < s["python_pass_ms"] else "more"
            out.append(
                f"- {r['mix']}: planning 1,000 servers takes {r['plan_ms']} ms (median; fastest "
                f"{r['plan_min_ms']} ms), {verdict} than the interpreter's start-up "
                f"(`python -c pass`, median {s['python_pass_ms']} ms)."
            )
    out += ["", PLANNER_NOTE, ""]
    out += [
        "## Reading the inventory",
        "",
        "`parse_inventory` on the generated YAML (HA mix), median of 5 runs.",
        "",
    ]
    out += ["| servers | YAML lines | load (ms) |", "|---:|---:|---:|"]
    out += [f"| {r['servers']:,} | {r['yaml_lines']:,} | {r['load_ms']} |" for r in results["loading"]]
    g = results["plan_scaling"]
    out += [
        "",
        "## `upgrade plan` at scale, whole processes",
        "",
        f"`{g['command']}` on the generated inventories of 10 and 1,000 servers (HA mix), {g['runs']} paired "
        "runs: the median of each, and the median of the pairs' ratios (aim: at most 1.5). With xsoar_mt's "
        "bytecode compiled, as an installed tool has it, and with none (each module compiled on every "
        "start, as a checkout run with PYTHONDONTWRITEBYTECODE=1): the fixed cost differs, the size's does not.",
        "",
        "| bytecode | figure | 10 servers (ms) | 1,000 servers (ms) | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for key, label in (("bytecode_cached", "compiled"), ("no_bytecode_cache", "none")):
        for figure in ("cpu", "wall"):
            f = g[key]
            out.append(
                f"| {label} | {figure} | {f[f'plan_10_{figure}_ms']} | {f[f'plan_1000_{figure}_ms']} "
                f"| {f[f'{figure}_ratio']} |"
            )
    out += ["", "## Start-up", "", f"Median wall time of {s['runs']} fresh processes.", ""]
    out += ["| command | ms |", "|---|---:|"]
    out += [
        f"| `python -c pass` | {s['python_pass_ms']} |",
        f"| `python -S -c pass` (no site-packages) | {s['python_no_site_ms']} |",
        f"| `{s['command']}` | {s['xsoar_mt_help_ms']} |",
        f"| `xsoar-mt upgrade plan -i inventory.example.yaml --to {TARGET} -o json` | {s['xsoar_mt_plan_example_ms']} |",
    ]
    for imports in results["imports"]:
        out += ["", f"## Imports: `{imports['command']}`", ""]
        ssh = ", ".join(imports["ssh_libraries_imported"]) or "none"
        out += [
            f"{imports['modules']} modules, {imports['total_ms']} ms in total (import time as Python reports it). heavy libraries imported (SSH, crypto, pydantic): **{ssh}**.",
            "",
        ]
        out += ["| module | cumulative (ms) | self (ms) |", "|---|---:|---:|"]
        out += [
            f"| `{r['module']}` | {r['cumulative_us'] / 1000:.1f} | {r['self_us'] / 1000:.1f} |"
            for r in imports["slowest"]
        ]
    r = results["readability"]
    out += [
        "",
        "## Readability: lines to read, piped",
        "",
        "What an operator reads in a CI log (standard output a pipe, no COLUMNS), counted in lines.",
        "",
        "| output | lines | aim |",
        "|---|---:|---:|",
        f"| `upgrade plan` text, {r['plan_deployment']} | {r['plan_text_lines']} | {r['plan_aim_lines']} |",
        f"| the same with `--detail` (every step) | {r['plan_detail_lines']} | |",
        f"| `preflight` on {r['preflight_servers']} fleet servers, all pass, one warning shared by 41 | "
        f"{r['preflight_text_lines']} | {r['preflight_aim_lines']} |",
        f"| the same with `--verbose` (every check on every server, the matrix) | {r['preflight_verbose_lines']} | |",
        "",
        f"Nothing is cut: the plan's widest line is {r['plan_text_widest_line']} characters (a command shown whole). "
        "Preflight's warning entries: " + "; ".join(f"`{w}`" for w in r["preflight_warning_entries"]) + ".",
        "",
        "## The upgrade night: the same deployment with waves and a window",
        "",
        f"`upgrade plan --to 6.12 {r['night_flags']}` (no durations in the inventory, so the documented "
        "defaults), piped.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| plan text lines | {r['night_text_lines']} |",
        f"| host groups per wave | {', '.join(str(n) for n in r['night_wave_sizes'])} |",
        f"| expected length of the night (min) | {r['night_expected_minutes']:g} |",
        f"| window (min) | {r['night_window_minutes']:g} |",
        f"| group upgrades done when the window closes | {r['night_group_upgrades_done']} |",
        f"| the window closes before | `{r['night_closes_before']}` |",
        f"| tenant-impact CSV rows (tenants) | {r['night_tenant_rows']} ({r['night_tenants']}) |",
        "",
        "Tenant-impact CSV head:",
        "",
        "```",
        *r["night_csv_head"],
        "```",
    ]
    for title, figures in results["fleet"].items():
        out += [
            "",
            f"## On the SSH fleet: {title}",
            "",
            "```json",
            json.dumps(figures, indent=2, default=str),
            "```",
        ]
        if "run_shrinks_by_seconds" in figures:
            out += ["", prepare_summary(figures)]
    out += ["", RUN_NOTE]
    return "\n".join(out) + "\n"


def prepare_summary(f: dict[str, Any]) -> str:
    """The prepare figures in a sentence: the night's run with and without it, and the stops' span."""
    without, with_ = f["without_prepare"], f["with_prepare"]
    return (
        f"Each of {f['servers']} servers' installer fetch slowed to {f['fetch_delay_seconds_per_server']:g} s. "
        f"The night's run (start to last validation) took {without['run_seconds']:g} s without `upgrade "
        f"prepare` and {with_['run_seconds']:g} s after it: {f['run_shrinks_by_seconds']:g} s "
        f"({f['run_shrinks_by_percent']:g}%) shorter, with {with_['fetches_on_the_night']} fetches on the night "
        f"instead of {without['fetches_on_the_night']}. From the first stop to the last validation it took "
        f"{without['service_window_seconds']:g} s and {with_['service_window_seconds']:g} s: the plan fetches "
        "every installer before its first stop, so what prepare takes out of the window is the time before "
        "the first stop, not the time servers are down."
    )


def main() -> None:
    plan_json = ["upgrade", "plan", "-i", "inventory.example.yaml", "--to", TARGET, "-o", "json"]
    results: dict[str, Any] = {
        "machine": machine(),
        "planning": planning(),
        "loading": loading(),
        "startup": startup(),
        "plan_scaling": plan_scaling(),
        "imports": [import_times(["--help"]), import_times(plan_json)],
    }
    results["readability"] = readability()
    results["fleet"] = fleet_figures()
    (BENCH / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (BENCH / "RESULTS.md").write_text(markdown(results) + mutation_section())
    print(markdown(results))


def mutation_section() -> str:
    """The mutation testing section of RESULTS.md, kept as it is: `make mutation` measures it, not this."""
    path = BENCH / "RESULTS.md"
    text = path.read_text() if path.exists() else ""
    start = text.find(MUTATION_HEADING)
    return "\n" + text[start:] if start >= 0 else ""


MUTATION_HEADING = "## Mutation testing"


if __name__ == "__main__":
    main()
