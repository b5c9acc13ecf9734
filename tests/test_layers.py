"""The layering guard: lower layers never import higher ones, and light entry points stay light.

Layers, lowest first (README, "Architecture"):
    errors, settings, version         shared by all
    beam/format                      the dataset contract: no Beam, no TensorFlow
    beam/prep                        one manifest row, plain Python: no Beam, no TensorFlow
    storage, gcs_listing             files on any Beam filesystem, and gs:// listings
    beam/job                         the only place that builds Beam transforms
    beam/tools, reader, arrays       reading a finished dataset
    components, pipelines            KFP adapters and the Vertex pipeline
    cli                              the `audioflow` command
The import rules are checked on the source (every import, including those inside functions), and
the runtime rules in fresh interpreters, by looking at sys.modules.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"audioflow.beam": REPO / "beam", "audioflow.components": REPO / "components"}
PACKAGE_DIRS["audioflow.pipelines"] = REPO / "pipelines"

# module prefix -> what it may not import (module prefixes of ours, and third-party roots)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "audioflow.beam.format": (
        "audioflow.beam.prep",
        "audioflow.beam.storage",
        "audioflow.beam.job",
        "audioflow.beam.tools",
        "audioflow.beam.reader",
        "audioflow.beam.cli",
        "audioflow.components",
        "audioflow.pipelines",
        "apache_beam",
        "kfp",
    ),
    "audioflow.beam.prep": (
        "audioflow.beam.storage",
        "audioflow.beam.job",
        "audioflow.beam.tools",
        "audioflow.beam.reader",
        "audioflow.beam.cli",
        "audioflow.components",
        "audioflow.pipelines",
        "apache_beam",
        "tensorflow",
        "kfp",
    ),
    "audioflow.beam.job": (
        "audioflow.beam.tools",
        "audioflow.beam.reader",
        "audioflow.beam.cli",
        "audioflow.components",
        "audioflow.pipelines",
        "tensorflow",
        "kfp",
    ),
    "audioflow.beam.tools": ("audioflow.beam.job", "audioflow.beam.cli", "audioflow.components", "audioflow.pipelines"),
    "audioflow.beam.storage": ("audioflow.beam.job", "audioflow.beam.tools", "audioflow.beam.cli", "tensorflow"),
    "audioflow.beam.gcs_listing": ("audioflow.beam.job", "audioflow.beam.tools", "audioflow.beam.cli", "tensorflow"),
    "audioflow.beam.settings": ("audioflow.beam.job", "audioflow.beam.tools", "apache_beam", "tensorflow", "kfp"),
    "audioflow.beam.errors": ("audioflow", "apache_beam", "tensorflow", "kfp"),
    "audioflow.beam.cli": ("audioflow.components", "audioflow.pipelines"),
    "audioflow.components": ("audioflow.beam.cli", "audioflow.pipelines"),
    "audioflow.pipelines": ("audioflow.beam.job.launch", "audioflow.beam.job.graph", "audioflow.beam.cli"),
}


def module_name(path: Path) -> str:
    for package, folder in PACKAGE_DIRS.items():
        if path.is_relative_to(folder):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            return ".".join((package, *parts))
    raise AssertionError(path)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_violations() -> list[str]:
    found = []
    for folder in PACKAGE_DIRS.values():
        for path in sorted(folder.rglob("*.py")):
            module = module_name(path)
            rules = [forbidden for prefix, forbidden in FORBIDDEN.items() if within(module, prefix)]
            for imported in sorted(imports_of(path)):
                for forbidden in (f for rule in rules for f in rule):
                    if within(imported, forbidden) and not within(imported, module):
                        where = path.relative_to(folder.parent)
                        found.append(f"{where} imports {imported} ({forbidden} is a higher layer)")
    return found


def test_no_module_imports_a_higher_layer():
    assert layer_violations() == []


def test_the_guard_catches_a_violation(tmp_path, monkeypatch):
    """A check that cannot fail is no check: put a Beam import into format/ and the guard must see it."""
    fake = tmp_path / "beam"
    (fake / "format").mkdir(parents=True)
    (fake / "format" / "sneaky.py").write_text("def f():\n    import apache_beam\n")
    monkeypatch.setitem(PACKAGE_DIRS, "audioflow.beam", fake)
    assert layer_violations() == ["beam/format/sneaky.py imports apache_beam (apache_beam is a higher layer)"]


def run_fresh(code: str) -> dict:
    """Runs `code` in a fresh interpreter (it prints JSON) and returns what it printed."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("apache_beam", "tensorflow", "kfp", "google"):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
"""


def test_format_and_prep_import_with_beam_and_tensorflow_blocked():
    code = (
        BLOCKER
        + """
import json, pkgutil, importlib
import audioflow.beam.format, audioflow.beam.prep
names = []
for package in (audioflow.beam.format, audioflow.beam.prep):
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
        names.append(info.name)
print(json.dumps(names))
"""
    )
    imported = run_fresh(code)
    assert "audioflow.beam.format.example" in imported and "audioflow.beam.prep.manifest" in imported


HEAVY = ("apache_beam.runners", "tensorflow", "kfp.dsl.executor", "matplotlib")


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["ingest", "--help"], ["compile", "--output-dir", "{tmp}"], ["submit", "--help"]],
    ids=["help", "ingest-help", "compile", "submit-help"],
)
def test_light_commands_import_neither_beam_runners_nor_tensorflow(argv, tmp_path):
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    code = f"""
import json, sys
from click.testing import CliRunner
from audioflow.beam.cli import main
result = CliRunner().invoke(main, {argv!r})
heavy = sorted({{m.split(".")[0] + ("." + m.split(".")[1] if "." in m else "") for m in sys.modules
                 if any(m == h or m.startswith(h + ".") for h in {HEAVY!r})}})
print(json.dumps({{"exit": result.exit_code, "output": result.output[-500:], "heavy": heavy}}))
"""
    outcome = run_fresh(code)
    assert outcome["exit"] == 0, outcome["output"]
    assert outcome["heavy"] == []


def test_submitting_imports_no_beam_at_all():
    """`audioflow submit` needs KFP and the Vertex SDK, not the Beam job: vertex.py must not pull it in."""
    outcome = run_fresh(
        "import json, sys\nimport audioflow.pipelines.vertex, audioflow.pipelines.commands\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('apache_beam', 'tensorflow'))))"
    )
    assert outcome == []
