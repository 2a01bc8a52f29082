"""What the CLI needs to start: a GPU image without Textual (or tomli) must still train, bench and eval."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

# Blocking a module in sys.modules makes every later import of it raise ImportError.
BLOCKED = "import sys; sys.modules['textual'] = None; sys.modules['tomli'] = None; "


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED + code], capture_output=True, text=True, timeout=120)


def test_blocking_textual_does_block_it():
    done = python("import textual")
    assert done.returncode != 0 and "textual" in done.stderr


def test_the_cli_imports_without_textual():
    done = python("import vmcr2_cli.cli")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("command", ["train", "bench", "eval", "latch", "compare", "profiles", "embed", "export"])
def test_commands_other_than_watch_start_without_textual(command):
    done = python(f"sys.argv = ['vmcr2', {command!r}, '--help']\nfrom vmcr2_cli.cli import main\nmain()")
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout


def test_training_modules_do_not_import_textual():
    done = python("import vmcr2_cli.commands.train, vmcr2_cli.training.trainer, vmcr2_cli.bench.runner, "
                  "vmcr2_cli.evaluation.evaluate; print('textual' in sys.modules and sys.modules['textual'])")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("False", "None")


PACKAGE = Path(__file__).resolve().parents[1] / "vmcr2_cli"
# The layers, lowest first: a package may import the ones below it, never one above. ``runner``
# (a run's life, compare's trainings) sits above ``training`` (the loop and its parts) and
# ``evaluation`` (the judging); ``featurizer`` above both; ``commands`` and ``cli.py`` on top.
ABOVE_TRAINING = ("vmcr2_cli.runner", "vmcr2_cli.evaluation", "vmcr2_cli.featurizer", "vmcr2_cli.commands",
                  "vmcr2_cli.tui", "vmcr2_cli.bench", "vmcr2_cli.cli")
LOWER_LAYERS = {"training": ABOVE_TRAINING, "objectives": (*ABOVE_TRAINING, "vmcr2_cli.training"),
                "evaluation": ("vmcr2_cli.runner", "vmcr2_cli.featurizer", "vmcr2_cli.commands", "vmcr2_cli.cli")}


def imported_modules(path) -> set[str]:
    """Every module a file imports, at its top or inside a function (relative imports resolved)."""
    package = "vmcr2_cli." + ".".join(path.relative_to(PACKAGE).parent.parts)
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from .x import y, from . import y
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(LOWER_LAYERS))
def test_a_lower_layer_never_imports_a_higher_one(layer):
    offences = [f"{path.relative_to(PACKAGE)} imports {name}"
                for path in sorted((PACKAGE / layer).rglob("*.py")) for name in sorted(imported_modules(path))
                if name.startswith(LOWER_LAYERS[layer])]
    assert not offences, offences


def test_only_the_cli_and_its_commands_import_typer():
    offences = [str(path.relative_to(PACKAGE)) for path in sorted(PACKAGE.rglob("*.py"))
                if path.name != "cli.py" and "commands" not in path.relative_to(PACKAGE).parts
                and any(name == "typer" or name.startswith("typer.") for name in imported_modules(path))]
    assert not offences, offences
