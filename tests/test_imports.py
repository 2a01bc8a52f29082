"""What the CLI needs to start: a GPU image without Textual (or tomli) must still train, bench and eval."""

import subprocess
import sys

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
