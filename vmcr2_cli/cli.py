"""The ``vmcr2`` command: parses arguments and hands over to the commands' modules.

Every error the user can cause ends here as one line on stderr and exit code 2;
a failed run exits 1; Ctrl-C exits 130. No tracebacks for any of them.
"""

from __future__ import annotations

import sys

import typer

try:  # Typer ≥ 0.25 raises the exceptions of its vendored copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older Typer on the real click
    from click.exceptions import ClickException, NoArgsIsHelpError

from vmcr2_cli import __version__, invocation
from vmcr2_cli.commands import bench as bench_command
from vmcr2_cli.commands import compare as compare_command
from vmcr2_cli.commands import embed as embed_command
from vmcr2_cli.commands import eval as eval_command
from vmcr2_cli.commands import export as export_command
from vmcr2_cli.commands import latch as latch_command
from vmcr2_cli.commands import pack as pack_command
from vmcr2_cli.commands import train as train_command
from vmcr2_cli.commands import watch as watch_command
from vmcr2_cli.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, BadInput, RunFailed, Stopped

app = typer.Typer(
    name="vmcr2",
    help="Train, watch, evaluate and benchmark MCR² and V-MCR² featurizers.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vmcr2 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Train, watch, evaluate and benchmark MCR² and V-MCR² featurizers."""


app.command("train")(train_command.train)
app.command("profiles")(train_command.profiles)
app.command("watch")(watch_command.watch)
app.command("eval")(eval_command.eval_run)
app.command("latch")(latch_command.latch)
app.command("compare")(compare_command.compare)
app.command("embed")(embed_command.embed)
app.command("export")(export_command.export)
app.command("pack")(pack_command.pack)
app.command("bench")(bench_command.bench)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(code)


def _without_flag_metavars(command) -> None:
    """Typer's help writes ``<bool>`` beside a flag, which takes no value: write nothing there
    (``--help`` is made when help is shown, so it is caught as it is made)."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    make_help_option = command.get_help_option

    def help_option(ctx):
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for subcommand in getattr(command, "commands", {}).values():
        _without_flag_metavars(subcommand)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    invocation.record(argv)
    command = typer.main.get_command(app)
    _without_flag_metavars(command)
    try:
        code = command.main(args=argv, prog_name="vmcr2", standalone_mode=False)
    except NoArgsIsHelpError as help_shown:
        help_shown.show()
        code = 0
    except ClickException as error:
        _fail(error.format_message(), EXIT_BAD_INPUT)
    except (BadInput, RunFailed) as error:
        _fail(str(error), error.exit_code)
    except Stopped as stopped:  # its message is printed already
        code = stopped.exit_code
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted", EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
