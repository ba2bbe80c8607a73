"""Run a management command as `manage.py` does, to test what its user reads.

call_command raises a CommandError (or the argument error) as an exception;
only the command-line path shows whether the user gets one line or a
traceback.
"""

import contextlib
import io

from django.core.management import ManagementUtility


def run_from_command_line(name: str, *args: str) -> tuple[int | str | None, str]:
    """Run `manage.py <name> <args>` in this process: its exit code and stderr.

    Whatever the command raises other than SystemExit (a traceback on the
    command line) propagates, so a test sees it fail.
    """
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            ManagementUtility(["manage.py", name, *args]).execute()
        except SystemExit as exc:
            return exc.code, stderr.getvalue()
    return 0, stderr.getvalue()
