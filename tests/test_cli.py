"""The entry points' shared contract: one ``error:`` line and exit 2 for user errors (argument errors
included), exit 1 with the traceback for bugs."""
import argparse

import pytest

from paddleseg.errors import ConfigError, UserError
from paddleseg.utils.cli import (
    EXIT_USER,
    ArgumentParser,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run,
)


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="tool.py", description="a tool")
    p.add_argument("--count", type=positive_int, default=1)
    p.add_argument("--rate", type=positive_float)
    p.add_argument("--timeout", type=non_negative_float)
    p.add_argument("--workers", type=non_negative_int)
    return p


def _main(argv):
    _parser().parse_args(argv)
    return 0


@pytest.mark.parametrize("argv, message", [
    (["--count", "0"], "error: argument --count: must be a positive integer, got '0' (see tool.py --help)"),
    (["--count", "1.5"], "error: argument --count: must be a positive integer, got '1.5' (see tool.py --help)"),
    (["--rate", "-0.01"], "error: argument --rate: must be a positive number, got '-0.01' (see tool.py --help)"),
    (["--rate", "inf"], "error: argument --rate: must be a positive number, got 'inf' (see tool.py --help)"),
    (["--timeout", "-1"], "error: argument --timeout: must be a number >= 0, got '-1' (see tool.py --help)"),
    (["--workers", "-1"], "error: argument --workers: must be an integer >= 0, got '-1' (see tool.py --help)"),
    (["--cont", "2"], "error: unrecognized arguments: --cont 2 (see tool.py --help)"),
])
def test_argument_errors_are_one_error_line_and_exit_2(capsys, argv, message):
    assert run(_main, argv) == EXIT_USER
    err = capsys.readouterr().err
    assert err.splitlines() == [message]  # no usage text, no "tool.py: error:"


def test_good_values_parse():
    args = _parser().parse_args(["--count", "3", "--rate", "0.5", "--timeout", "0", "--workers", "0"])
    assert (args.count, args.rate, args.timeout, args.workers) == (3, 0.5, 0.0, 0)


def test_help_still_exits_0(capsys):
    with pytest.raises(SystemExit) as raised:
        _parser().parse_args(["--help"])
    assert raised.value.code == 0 and "--count" in capsys.readouterr().out


def test_a_multi_line_user_error_is_printed_on_one_line(capsys):
    def main(argv):
        raise ConfigError("cfg.yml: 2 of 3 samples are invalid:\n  a.png: truncated\n  b.png: too large\n")

    assert run(main, []) == EXIT_USER
    assert capsys.readouterr().err == "error: cfg.yml: 2 of 3 samples are invalid: a.png: truncated b.png: too large\n"


def test_an_empty_user_error_still_says_what_it_is(capsys):
    def main(argv):
        raise UserError()

    assert run(main, []) == EXIT_USER
    assert capsys.readouterr().err == "error: UserError\n"


def test_a_bug_keeps_its_traceback():
    def main(argv):
        raise argparse.ArgumentTypeError("not a user error when raised outside parsing")

    with pytest.raises(argparse.ArgumentTypeError):
        run(main, [])
