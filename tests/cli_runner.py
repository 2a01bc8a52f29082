"""Run the real ``vmcr2`` entry point in this process, as a shell would."""

from __future__ import annotations

import contextlib
import io

from vmcr2_cli import cli


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
