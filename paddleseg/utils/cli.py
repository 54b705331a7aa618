"""What every command-line entry point shares: logging setup and exit codes.

    def main(argv=None) -> int: ...
    if __name__ == "__main__":
        sys.exit(run(main))

Exit codes: 0 success; 2 a user error (:class:`~paddleseg.errors.UserError`: config, data,
checkpoint, arguments), printed as one ``error: ...`` line on stderr without a traceback (``--debug``
shows it); 1 anything else (a bug: the traceback is kept); 130 interrupted by Ctrl-C; 143 stopped by
SIGTERM, once the entry point has installed :func:`paddleseg.utils.signals.install_sigterm_handler`
(each printed as one line, ``interrupted`` / ``terminated``); 3 (``EXIT_SKIPPED``) a run that finished
but skipped inputs it could not use, each named in the log (predict.py).

Command-line arguments are parsed by :class:`ArgumentParser`, whose errors are user errors too (one
``error:`` line, exit 2, like every other), and checked by the ``type=`` functions here
(:func:`positive_int`, ...), which name the flag and the value.
"""
import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Callable, NoReturn, Optional, Sequence

from paddleseg.errors import UserError
from paddleseg.utils.distributed import report_failure
from paddleseg.utils.signals import EXIT_TERMINATED, Terminated

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_SKIPPED = 3  # finished, but some inputs were skipped (named in the log)
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors (an unknown flag, a bad value) raise :class:`UserError`:
    :func:`run` prints them as one ``error:`` line and exits 2, instead of argparse's usage text plus
    ``prog: error:``. ``--help`` is unchanged. Descriptions keep their line breaks."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see {self.prog} --help)")


def number_type(convert: Callable, expected: str, accept: Callable[[float], bool]) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return parse


positive_int = number_type(int, "a positive integer", lambda v: v > 0)
non_negative_int = number_type(int, "an integer >= 0", lambda v: v >= 0)
positive_float = number_type(float, "a positive number", lambda v: v > 0)
non_negative_float = number_type(float, "a number >= 0", lambda v: v >= 0)
# a test-time scale (--scales, a config's test_config.scales): beyond 16x an image would take gigabytes,
# and below 1/64 it is a handful of pixels
MIN_TEST_SCALE, MAX_TEST_SCALE = 1 / 64, 16
scale_factor = number_type(float, "a scale from 0.015625 to 16", lambda v: MIN_TEST_SCALE <= v <= MAX_TEST_SCALE)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors too")


def add_inference_arguments(parser: argparse.ArgumentParser, aug_flag: str) -> None:
    """Test-time augmentation and sliding-window options of val.py (``--aug_eval``) and predict.py
    (``--aug_pred``), plus device and CPU threads. Sizes, strides, scales and thread counts must be
    positive and finite: anything else is a user error while parsing (with :class:`ArgumentParser`),
    before a model is built."""
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                        help="auto (default): the GPU when PaddlePaddle has CUDA and a card is visible, else the CPU")
    parser.add_argument("--cpu_threads", type=positive_int, help="CPU math threads (default: all cores)")
    parser.add_argument(aug_flag, action="store_true", help="multi-scale (--scales) and flip averaging")
    parser.add_argument("--scales", type=scale_factor, nargs="+", default=[1.0])
    parser.add_argument("--flip_horizontal", action="store_true")
    parser.add_argument("--flip_vertical", action="store_true")
    parser.add_argument("--is_slide", action="store_true", help="predict in sliding windows")
    parser.add_argument("--crop_size", type=positive_int, nargs=2, metavar=("W", "H"), help="sliding window size")
    parser.add_argument("--stride", type=positive_int, nargs=2, metavar=("W", "H"), help="sliding window stride")


def setup_logging(log_file: Optional[Path] = None, level: int = logging.INFO) -> None:
    """Log to stderr and, if given, to ``log_file`` (appending). Idempotent."""
    root = logging.getLogger()
    root.setLevel(level)
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S")
    if not any(getattr(h, "_paddleseg", False) for h in root.handlers):
        for h in list(root.handlers):  # paddle installs its own handlers; ours replace them
            root.removeHandler(h)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        handler._paddleseg = True
        root.addHandler(handler)
    if log_file is not None:
        log_file = Path(log_file)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        if not any(getattr(h, "baseFilename", None) == str(log_file.resolve()) for h in root.handlers):
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
            file_handler.setFormatter(formatter)
            file_handler._paddleseg = True
            root.addHandler(file_handler)


def one_line(message: str) -> str:
    """``message`` with its line breaks and runs of white space folded into single spaces."""
    return " ".join(str(message).split())


def run(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> int:
    """Call ``main(argv)`` and turn its outcome into an exit code (module docstring). A user error is
    printed as exactly one ``error: ...`` line, however its message is written."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = main(args)
        return EXIT_OK if code is None else int(code)
    except UserError as e:
        message = one_line(e) or type(e).__name__
        print(f"error: {message}", file=sys.stderr, flush=True)
        report_failure(message)
        if debug:
            raise
        return EXIT_USER
    except Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        report_failure(f"{type(e).__name__}: {e}")
        raise
