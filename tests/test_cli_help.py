"""The help of every command: flags without a type beside them, shell completion offered."""

import pytest

from cli_runner import vmcr2

COMMANDS = ["train", "profiles", "watch", "eval", "latch", "compare", "bench", "embed"]


@pytest.mark.parametrize("command", COMMANDS)
def test_flags_show_no_bool_metavar(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = vmcr2(command, "--help", capsys=capsys)
    assert code == 0 and "--help" in out and "--json" in out
    assert "<bool>" not in out
    lines = [line for line in out.splitlines() if "--json" in line]
    assert lines and all("<" not in line for line in lines)


def test_the_root_help_offers_shell_completion(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = vmcr2("--help", capsys=capsys)
    assert code == 0 and "--install-completion" in out and "--show-completion" in out and "<bool>" not in out


def test_options_with_a_value_keep_their_type(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = vmcr2("train", "--help", capsys=capsys)
    assert code == 0 and any("--epochs" in line and "<int>" in line for line in out.splitlines())
