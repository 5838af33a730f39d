"""How long the ``costline`` command takes to start: ``costline --help`` and ``costline cost``.

    python bench/cli_startup.py [--runs 20] [--hyperfine]

Each command runs ``--runs`` times in a fresh process (after two warm-up runs, which also fill the compiled
catalog cache in a scratch data directory); the report gives the median and minimum wall time and the median
CPU time (user + system) of the child, which a busy machine inflates less than wall time. ``python -c pass``
is measured alongside as the floor. With ``--hyperfine`` (and hyperfine on the PATH) the same commands are
handed to hyperfine instead. The slowest imports of each command are listed from ``python -X importtime``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "costline --help": [sys.executable, "-m", "costline", "--help"],
    "costline cost": [sys.executable, "-m", "costline", "cost", "--model", "gpt-4o", "--input-tokens", "1000",
                      "--output-tokens", "100"],
}


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(argv: list[str], runs: int, env: dict[str, str]) -> tuple[float, float, float]:
    """(median wall, min wall, median CPU) in seconds."""
    walls, cpus = [], []
    for _ in range(2):
        subprocess.run(argv, env=env, capture_output=True, check=True)
    for _ in range(runs):
        cpu = _child_cpu()
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
        cpus.append(_child_cpu() - cpu)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def slowest_imports(argv: list[str], env: dict[str, str], count: int = 5) -> list[tuple[int, str]]:
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, capture_output=True, text=True,
                          check=True)
    found = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            found.append((int(parts[1]), parts[2].rstrip()))
    top_level = [(us, name) for us, name in found if not name.startswith("   ")]
    return sorted(top_level, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--hyperfine", action="store_true", help="Run the commands under hyperfine.")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="costline-bench-")
    env = {**os.environ, "COSTLINE_DATA_DIR": scratch}
    try:
        if args.hyperfine and shutil.which("hyperfine"):
            quoted = [" ".join(argv) for argv in COMMANDS.values()]
            subprocess.run(["hyperfine", "-N", "-w", "2", "-r", str(args.runs), *quoted], env=env, check=True)
            return
        print(f"{'command':<18} {'median wall':>12} {'min wall':>10} {'median CPU':>11}")
        for name, argv in COMMANDS.items():
            median, low, cpu = measure(argv, args.runs, env)
            print(f"{name:<18} {median * 1000:>9.0f} ms {low * 1000:>7.0f} ms {cpu * 1000:>8.0f} ms")
        for name, argv in list(COMMANDS.items())[1:]:
            listed = ", ".join(f"{module.strip()} {us / 1000:.0f} ms" for us, module in slowest_imports(argv, env))
            print(f"slowest top-level imports of {name}: {listed}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
