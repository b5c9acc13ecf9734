"""The worker set: what the core package requires is what workers install, and the worker-side code
never imports a package that only an extra brings (KFP, TensorFlow, matplotlib).

Fast checks, run by `make test`. The slow one, a fresh venv holding only the worker set that runs an
ingest, is tests/components/test_dockerfile.py::test_install_steps_work_in_a_fresh_venv[worker].
"""

from __future__ import annotations

import ast
import email.parser
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from audio_files import write_audio, write_manifest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Top-level packages that only an extra installs, and the extra.
EXTRA_ONLY = {"kfp": "pipelines", "tensorflow": "train", "keras": "train", "matplotlib": "report"}
WORKER_SET = {"apache-beam", "soundfile", "soxr", "numpy", "click", "python-dotenv", "google-crc32c", "xxhash"}
# What runs on a Dataflow worker or in the template launcher, and the commands that start it.
WORKER_MODULES = [
    *sorted(
        f"audioflow.beam.{folder}.{path.stem}"
        for folder in ("format", "prep", "job")
        for path in (REPO / "beam" / folder).glob("*.py")
        if path.name != "__init__.py"
    ),
    *("audioflow.beam.cli", "audioflow.beam.storage", "audioflow.beam.byte_ranges", "audioflow.beam.settings"),
]


def test_the_core_package_is_the_worker_set():
    names = {Requirement(spec).name for spec in PYPROJECT["project"]["dependencies"]}
    assert names == WORKER_SET
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {Requirement(spec).name for spec in extras["pipelines"]} == {"kfp", "google-cloud-aiplatform"}
    assert {Requirement(spec).name for spec in extras["train"]} == {"tensorflow-cpu"}
    assert {Requirement(spec).name for spec in extras["report"]} == {"matplotlib"}
    assert extras["all"] == ["audioflow[pipelines,train,report]"]


def test_the_staged_sdist_installs_only_the_worker_set(tmp_path):
    """`--setup_file pyproject.toml` stages the sdist Beam's stager builds this way; a worker's boot
    runs `pip install workflow.tar.gz` with no extras, so only unconditional requirements install."""
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--outdir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [sdist] = tmp_path.glob("audioflow-*.tar.gz")
    with tarfile.open(sdist) as archive:
        info = next(m for m in archive.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
        metadata = email.parser.Parser().parsestr(archive.extractfile(info).read().decode())
    requirements = [Requirement(spec) for spec in metadata.get_all("Requires-Dist")]
    unconditional = {r.name for r in requirements if r.marker is None}
    assert unconditional == WORKER_SET
    for requirement in requirements:
        if requirement.name in ("kfp", "tensorflow-cpu", "matplotlib", "google-cloud-aiplatform"):
            assert "extra ==" in str(requirement.marker), requirement


def _imports(path: Path) -> set[str]:
    """Top-level names a module imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_heavy_imports_live_only_in_modules_of_their_extra():
    """Module-level imports of KFP, TensorFlow or matplotlib only in components/, pipelines/ and the
    report (whose callers need the extra); everywhere else they are inside the function that needs them."""
    allowed = {"components", "pipelines", "beam/tools/report"}
    for path in sorted([*REPO.glob("beam/**/*.py"), *REPO.glob("components/*.py"), *REPO.glob("pipelines/*.py")]):
        relative = path.relative_to(REPO).with_suffix("").as_posix()
        heavy = _imports(path) & set(EXTRA_ONLY)
        if heavy and not any(relative == a or relative.startswith(a + "/") for a in allowed):
            raise AssertionError(f"{relative} imports {sorted(heavy)} at module level")


def test_worker_side_code_imports_no_extra(tmp_path):
    """Imports every worker-side module and runs `audioflow --help` and an ingest in one process, then
    lists what sys.modules holds: none of the extras' packages may be there."""
    for index in range(3):
        write_audio(tmp_path / f"{index}.wav", seconds=0.2, seed=index)
    write_manifest(tmp_path / "labels.csv", [("cat", "0.wav"), ("dog", "1.wav"), ("cat", "2.wav")])
    probe = f"""
import importlib, sys
from click.testing import CliRunner
for name in {WORKER_MODULES!r}:
    importlib.import_module(name)
from audioflow.beam.cli import main
runner = CliRunner()
assert runner.invoke(main, ["--help"]).exit_code == 0
assert runner.invoke(main, ["template", "--help"]).exit_code == 0
result = runner.invoke(main, ["ingest", "--manifest", {str(tmp_path / "labels.csv")!r}, "--output",
                              {str(tmp_path / "dataset")!r}, "--runner", "DirectRunner"])
assert result.exit_code == 0, result.output
print(sorted({{m.split(".")[0] for m in sys.modules}} & {set(EXTRA_ONLY)!r}))
"""
    shown = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "AUDIOFLOW_ENV_FILE": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "dataset" / "dataset.json").is_file()
