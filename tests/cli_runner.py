"""Run the real ``vmcr2`` entry point in this process, as a shell would."""

from __future__ import annotations

import contextlib
import io

from vmcr2_cli import cli

# A training of seconds: 10 synthetic classes, 400 images, 4 steps of 100 an epoch (each test adds its own keys).
TINY_SYNTHETIC = ("--profile", "synthetic", "--set", "synthetic_train_per_class=40",
                  "--set", "synthetic_test_per_class=10", "--batch-size", "100")


def vmcr2(*args, capsys=None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``vmcr2 ARGS…``.

    With pytest's ``capsys`` the output is read from it; without (module-scoped
    fixtures have none) it is captured here.
    """
    if capsys is not None:
        code = _exit_code(args)
        out, err = capsys.readouterr()
        return code, out, err
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _exit_code(args)
    return code, out.getvalue(), err.getvalue()


def _exit_code(args) -> int:
    try:
        cli.main([str(arg) for arg in args])
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0
    return 0
