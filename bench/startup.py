"""Start-up cost with and without bytecode, and the size and install time of each dependency set.

Standalone (not part of bench/run.py). It creates fresh venvs under bench/out/startup/ from uv.lock
(`uv export` of the set, then `uv pip install -r` and the project itself, not editable):

  worker        the core package only: what Dataflow workers install (`--setup_file`, worker image)
  worker-nopyc  the same, without bytecode
  full          audioflow[all] (components image, `make setup`), bytecode compiled at install time
  full-nopyc    audioflow[all] as uv installs it by default: no bytecode

and then, with PYTHONDONTWRITEBYTECODE=1 (as this environment and the Dockerfile set it, so no run
ever writes a .pyc), times whole processes:

  help      `audioflow --help`
  ingest    `audioflow ingest` of 10 demo clips on the local runner
  training  `python -c "import audioflow.components.training, tensorflow"` (the training step's imports)

Install times use uv's cache as it is (warm after `make setup`: no download, so the time is linking
and compiling); `--cold` gives uv an empty cache (downloads from PyPI). `--pip` also times a plain
`pip install --no-cache-dir` of each set into a fresh venv: what a Dataflow worker does with a staged
sdist (pip, from PyPI) when its image does not already hold the packages.

Usage: .venv/bin/python bench/startup.py [--repeat 3] [--pip] [--cold] [--markdown]
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UV = REPO / ".tools" / "bin" / "uv"
OUT = REPO / "bench" / "out" / "startup"
PYTHON = "python3.11"
VENVS = {  # name: (extras, bytecode)
    "worker": (False, True),
    "worker-nopyc": (False, False),
    "full": (True, True),
    "full-nopyc": (True, False),
}
HEAVY = ("tensorflow", "kfp", "matplotlib", "keras")


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, command))}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def install_env(cache: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UV_COMPILE_BYTECODE", "VIRTUAL_ENV")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    if cache is not None:
        env["UV_CACHE_DIR"] = str(cache)
    return env


def requirements(extras: bool, folder: Path) -> Path:
    path = folder / ("requirements-all.txt" if extras else "requirements-worker.txt")
    command = [str(UV), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "-o", str(path)]
    run([*command, *(["--all-extras"] if extras else [])], cwd=REPO)
    return path


def tree_size(path: Path) -> tuple[int, int]:
    """(bytes on disk as apparent size, number of .pyc files)."""
    total = pycs = 0
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
            pycs += name.endswith(".pyc")
    return total, pycs


def make_venv(name: str, cold: bool) -> dict:
    """Creates venv `name` afresh and returns what its install took."""
    extras, bytecode = VENVS[name]
    venv = OUT / name
    shutil.rmtree(venv, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "uv-cache" if cold else None
        env = install_env(cache)
        run([str(UV), "venv", "--python", PYTHON, str(venv)], env=env)
        python = str(venv / "bin" / "python")
        flags = ["--compile-bytecode"] if bytecode else []
        reqs = requirements(extras, Path(scratch))
        started = time.perf_counter()
        run([str(UV), "pip", "install", "--python", python, *flags, "-r", str(reqs)], env=env)
        dependencies = time.perf_counter() - started
        started = time.perf_counter()
        run([str(UV), "pip", "install", "--python", python, *flags, "--no-deps", str(REPO)], env=env)
        project = time.perf_counter() - started
    size, pycs = tree_size(venv)
    packages = len(run([str(UV), "pip", "list", "--python", python], env=env).stdout.splitlines()) - 2
    return {
        "name": name,
        "deps_s": dependencies,
        "project_s": project,
        "bytes": size,
        "pyc": pycs,
        "packages": packages,
    }


def pip_install_time(extras: bool) -> dict:
    """A plain pip install of the set from PyPI, no cache, into a fresh venv (what a worker's pip does)."""
    with tempfile.TemporaryDirectory() as scratch:
        venv = Path(scratch) / "venv"
        run([PYTHON, "-m", "venv", str(venv)])
        reqs = requirements(extras, Path(scratch))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_FIND_LINKS")}
        started = time.perf_counter()
        run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--quiet", "-r", str(reqs)], env=env)
        seconds = time.perf_counter() - started
        size, _ = tree_size(venv)
    return {"set": "all" if extras else "worker", "pip_s": seconds, "bytes": size}


def demo_manifest(clips: int) -> Path:
    """`clips` rows of the demo data (good rows only), generated by the full venv's audioflow."""
    folder = OUT / "demo"
    if not (folder / "labels.csv").exists():
        shutil.rmtree(folder, ignore_errors=True)
        run([str(OUT / "full" / "bin" / "audioflow"), "demo-data", str(folder), "--clips-per-class", "4"])
    lines = (folder / "labels.csv").read_text().splitlines()
    good = [
        line
        for line in lines[1:]
        if (folder / line.rsplit(",", 1)[-1]).is_file() and "corrupt" not in line.rsplit(",", 1)[-1]
    ][:clips]
    manifest = folder / f"labels-{clips}.csv"
    manifest.write_text("\n".join([lines[0], *good]) + "\n")
    return manifest


def commands(venv: Path, manifest: Path) -> dict[str, list[str]]:
    bin_ = venv / "bin"
    found = {
        "help": [str(bin_ / "audioflow"), "--help"],
        "ingest": [
            str(bin_ / "audioflow"),
            "ingest",
            "--manifest",
            str(manifest),
            "--output",
            str(OUT / f"dataset-{venv.name}"),
            "--overwrite",
            "--runner",
            "DirectRunner",
        ],
    }
    if VENVS[venv.name][0]:
        found["training"] = [str(bin_ / "python"), "-c", "import audioflow.components.training, tensorflow"]
    return found


def time_command(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree): CPU time is much less disturbed than wall time
    when other jobs share the machine."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env |= {"PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "AUDIOFLOW_ENV_FILE": "/nonexistent"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run(command, env=env, cwd=OUT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_modules_after_ingest(venv: Path, manifest: Path) -> list[str]:
    """Which heavy packages a worker-set ingest imports (must be none)."""
    code = (
        "import sys\n"
        "from audioflow.beam.cli import main\n"
        f"main(['ingest', '--manifest', {str(manifest)!r}, '--output', {str(OUT / 'dataset-heavy')!r}, "
        "'--overwrite', '--runner', 'DirectRunner'], standalone_mode=False)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    return eval(run([str(venv / "bin" / "python"), "-c", code], cwd=OUT).stdout.strip().splitlines()[-1])


def mb(size: int) -> str:
    return f"{size / 1e6:,.0f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each start-up command (median shown)")
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--cold", action="store_true", help="install with an empty uv cache (downloads)")
    parser.add_argument("--pip", action="store_true", help="also time `pip install --no-cache-dir` of each set")
    parser.add_argument("--reuse", action="store_true", help="keep existing venvs (no install timings)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)

    installs = []
    for name in VENVS:
        if args.reuse and (OUT / name / "bin" / "python").exists():
            continue
        print(f"creating {name} ...", file=sys.stderr, flush=True)
        installs.append(make_venv(name, args.cold))
    pips = [pip_install_time(extras) for extras in (False, True)] if args.pip else []

    manifest = demo_manifest(args.clips)
    timings: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for repetition in range(args.repeat + 1):  # round-robin, so that load changes hit every venv alike
        print(f"timing round {repetition} of {args.repeat} ...", file=sys.stderr, flush=True)
        for name in VENVS:
            for label, command in commands(OUT / name, manifest).items():
                measured = time_command(command)
                if repetition:  # round 0 warms the page cache (not bytecode: none is written)
                    timings.setdefault(label, {}).setdefault(name, []).append(measured)
    heavy = heavy_modules_after_ingest(OUT / "worker", manifest)

    cache = "an empty uv cache (downloads from PyPI)" if args.cold else "uv's warm cache (no downloads)"
    if installs:
        print(f"### Dependency sets: fresh venvs from uv.lock, installed from {cache}\n")
        print("| venv | packages | installed MB | .pyc files | install deps s | install project s |")
        print("|---|---:|---:|---:|---:|---:|")
    for entry in installs:
        print(
            f"| {entry['name']} | {entry['packages']} | {mb(entry['bytes'])} | {entry['pyc']:,} | "
            f"{entry['deps_s']:.1f} | {entry['project_s']:.1f} |"
        )
    if pips:
        print("\n| set | `pip install --no-cache-dir` from PyPI, s | installed MB (pip compiles bytecode) |")
        print("|---|---:|---:|")
        for entry in pips:
            print(f"| {entry['set']} | {entry['pip_s']:.0f} | {mb(entry['bytes'])} |")
    for index, unit in ((0, "wall"), (1, "CPU (user + system, the process and its children)")):
        print(f"\n### Start-up with PYTHONDONTWRITEBYTECODE=1: {unit} seconds, median of {args.repeat} (min–max)\n")
        print("| command | " + " | ".join(VENVS) + " | full-nopyc / full |")
        print("|---|" + "---:|" * (len(VENVS) + 1))
        for label, by_venv in timings.items():
            cells = []
            for name in VENVS:
                values = [measured[index] for measured in by_venv.get(name, [])]
                cells.append(
                    f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})" if values else "—"
                )
            medians = {name: statistics.median(m[index] for m in by_venv[name]) for name in ("full", "full-nopyc")}
            print(f"| {label} | " + " | ".join(cells) + f" | {medians['full-nopyc'] / medians['full']:.1f}× |")
    print(f"\nHeavy packages imported by `audioflow ingest` in the worker venv: {heavy or 'none'}")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"Load average at the end (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
