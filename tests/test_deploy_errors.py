"""paddleseg.deploy.errors: the error types map onto the project's user errors, the exit codes are the
one contract, a C++ error becomes one line, and SIGTERM turns into exit 143 with clean-up run."""
import subprocess
import sys
import textwrap

from paddleseg.deploy import errors
from paddleseg.errors import DatasetError, UserError
from paddleseg.utils import cli

from conftest import REPO


def test_error_types_are_user_errors_and_exit_codes_are_the_projects():
    assert issubclass(errors.DeployError, UserError) and issubclass(errors.ImageError, DatasetError)
    assert issubclass(errors.ImageTooLarge, errors.ImageError)
    codes = (errors.EXIT_OK, errors.EXIT_BUG, errors.EXIT_USER, errors.EXIT_SKIPPED, errors.EXIT_INTERRUPTED,
             errors.EXIT_TERMINATED)
    assert codes == (0, 1, 2, 3, 130, 143)
    assert errors.run is cli.run and (cli.EXIT_SKIPPED, cli.EXIT_USER) == (3, 2)


def test_run_prints_one_error_line_for_a_deploy_error(capsys):
    def main(argv):
        raise errors.DeployError("output/export/deploy.yaml: Deploy.palette:\n  300 colours")

    assert errors.run(main, []) == 2
    assert capsys.readouterr().err == "error: output/export/deploy.yaml: Deploy.palette: 300 colours\n"


def test_one_line_keeps_the_message_of_a_paddle_cpp_error():
    cpp = RuntimeError("\n--------\nC++ Traceback (most recent call last):\n0 foo\n--------\n"
                       "Error Message Summary:\n--------\nInvalidArgumentError: bad shape (at x.cc:1)\n")
    assert errors.one_line(cpp) == "RuntimeError: InvalidArgumentError: bad shape (at x.cc:1)"
    assert errors.one_line(ValueError("")) == "ValueError: ValueError"


def test_sigterm_after_stop_on_sigterm_runs_the_clean_up_and_exits_143(tmp_path):
    """A run killed with SIGTERM ends like Ctrl-C: the ``finally`` block runs (here: a temporary file
    removed, as atomic writes do) and the exit status is 143, with one line."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from paddleseg.deploy.errors import run, stop_on_sigterm
        def main(argv):
            tmp = {str(tmp_path / "partial")!r}
            open(tmp, "w").close()
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                signal.pause()
            finally:
                os.unlink(tmp)
        stop_on_sigterm()
        sys.exit(run(main, []))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip() == "terminated" and list(tmp_path.iterdir()) == []
