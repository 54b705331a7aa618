"""Stopping on request: Ctrl-C (SIGINT) and SIGTERM, the signal Slurm, Kubernetes, ``timeout`` and
Paddle's launcher send to end a process.

Python turns Ctrl-C into ``KeyboardInterrupt``. For SIGTERM an entry point installs
:func:`install_sigterm_handler`, which raises :class:`Terminated`, a ``KeyboardInterrupt``, so that every
clean-up written for Ctrl-C (atomic writes removing their temporary files, training's final checkpoint)
serves SIGTERM too; :func:`paddleseg.utils.cli.run` exits 130 for the one and 143 for the other, with one
line. Paddle installs its own SIGTERM handler in C when it is imported (it prints a "Termination signal"
banner and exits 143 without clean-up), so ours is installed after importing Paddle, and replaces it.
The first SIGTERM is acted on; later ones are ignored, so that they cannot cut short the clean-up the
first one started (Paddle's launcher sends SIGTERM up to three times, 0.2 s apart).

:func:`interruptions_held` holds both while a block runs (the training step: an interrupted backward
pass or optimizer update would leave weights no iteration ever had) and raises the held one when the
block ends.
"""
import contextlib
import importlib
import signal
import threading
from typing import Callable, Iterator, List, Sequence

EXIT_TERMINATED = 143  # 128 + SIGTERM, what the shell reports for a process ended by it


class Terminated(KeyboardInterrupt):
    """SIGTERM received (module docstring)."""


def _terminate(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a repeated SIGTERM must not cut the clean-up short
    raise Terminated


def install_sigterm_handler(after: Sequence[str] = ("paddle",)) -> None:
    """Turn SIGTERM into :class:`Terminated` in this process. For entry points (process-wide state).
    ``after`` names the modules that install their own SIGTERM handler when imported (Paddle does, in
    C): they are imported first, so that ours replaces theirs. The deployment command line passes
    ``()`` once its runtime is loaded, so that a machine without Paddle never imports it."""
    for module in after:
        importlib.import_module(module)
    signal.signal(signal.SIGTERM, _terminate)


def _raise(signum: int) -> None:
    if signum == signal.SIGTERM:
        if signal.getsignal(signal.SIGTERM) is _terminate:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as _terminate: acted on once
        raise Terminated
    raise KeyboardInterrupt


def no_agreement(signum: int) -> int:
    return signum


@contextlib.contextmanager
def interruptions_held(agree: Callable[[int], int] = no_agreement) -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while the block runs; when it ends, raise the one received
    (``KeyboardInterrupt`` or :class:`Terminated`).

    ``agree(signum)`` is called when the block ends normally, with the signal received (0 if none), and
    returns the one to act on: training on several ranks passes a function that agrees on it across the
    ranks, so that all stop after the same iteration. An error raised in the block while a signal is
    held is replaced by the signal's exception (chained): it is most likely the stop reaching another
    process first (a data-loader worker, a peer rank), and the run ends as asked.

    Only Python's own SIGINT handler and :func:`install_sigterm_handler`'s are held, and only on the main
    thread; a signal that is ignored, or handled otherwise, is left as it is."""
    main = threading.current_thread() is threading.main_thread()
    held = [number for number, ours in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, _terminate))
            if main and signal.getsignal(number) is ours]
    received: List[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: received.append(signum)) for number in held}
    try:
        yield
    except Exception:
        _restore(previous)
        if received:
            _raise(_first(received))
        raise
    except BaseException:
        _restore(previous)
        raise
    _restore(previous)
    signum = agree(_first(received) if received else 0)
    if signum:
        _raise(signum)


def _first(received: List[int]) -> int:
    return signal.SIGTERM if signal.SIGTERM in received else received[0]


def _restore(previous) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)
