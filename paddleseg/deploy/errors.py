"""The errors of deployment and the exit codes every front end returns (predict.py, tools/infer.py, ...).

    sys.exit(run(main))          # in a script's __main__ block

Exit codes: 0 done; 2 a user error (an argument, the export folder, the GPU software: a
:class:`~paddleseg.errors.UserError`, such as :class:`DeployError`), printed as exactly one
``error: ...`` line without a traceback (``--debug`` shows it); 3 finished, but some inputs were
skipped (each named in the log: an :class:`ImageError`); 1 a bug (the traceback is kept); 130 Ctrl-C;
143 SIGTERM, once the entry point turned it into :class:`Terminated` (:func:`stop_on_sigterm`). Outputs
already written stay whole in every case: each is written through a temporary name.

The contract is implemented once, for every entry point of the project: :func:`run` and the codes
are :mod:`paddleseg.utils.cli`'s, :class:`Terminated` is :mod:`paddleseg.utils.signals`' (both
standard library only); this module gathers them for the deployment side.
"""
from paddleseg.errors import DatasetError, UserError
from paddleseg.utils.cli import EXIT_BUG, EXIT_INTERRUPTED, EXIT_OK, EXIT_SKIPPED, EXIT_USER, run
from paddleseg.utils.signals import EXIT_TERMINATED, Terminated, install_sigterm_handler

__all__ = ["EXIT_OK", "EXIT_BUG", "EXIT_USER", "EXIT_SKIPPED", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "DeployError",
           "ImageError", "ImageTooLarge", "Terminated", "UserError", "one_line", "run", "stop_on_sigterm"]

TRUE_SPELLINGS = {"true": True, "1": True, "false": False, "0": False}  # upstream's True/False switches


class DeployError(UserError):
    """A problem with the export folder, its deploy.yaml, the arguments or the runtime software."""


class ImageError(DatasetError):
    """An input image that cannot be used (missing, not a regular file, unreadable, too large).
    Prediction names it and skips it (exit 3); evaluation stops on it (exit 2)."""


class ImageTooLarge(ImageError):
    """An image whose header claims more pixels than the limit; it was not decoded."""


def stop_on_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` (a ``KeyboardInterrupt``: the same clean-up runs, then exit
    143): :func:`paddleseg.utils.signals.install_sigterm_handler` without importing Paddle. For entry
    points only, after the runtime is imported (Paddle installs its own handler then)."""
    install_sigterm_handler(after=())


def one_line(error: BaseException) -> str:
    """An exception as one line, its type first. Paddle's C++ errors put their message after an
    'Error Message Summary' line, below a C++ traceback."""
    lines = [line.strip() for line in str(error).splitlines()]
    if "Error Message Summary:" in lines:
        lines = lines[lines.index("Error Message Summary:") + 1:]
    text = next((line for line in lines if line and not set(line) <= set("-=") and "Traceback" not in line),
                type(error).__name__)
    return f"{type(error).__name__}: {text}"[:400]
