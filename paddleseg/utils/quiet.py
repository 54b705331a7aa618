"""Paddle's known-harmless warnings, filtered by exact message and module; every other warning stays.

    from paddleseg.utils import quiet   # importing the package has already installed the filters
    quiet.HARMLESS_WARNINGS              # (message regex, module) of each filtered warning

The four notices below are about Paddle's own internals and say nothing a user of this package can act
on. Each filter matches one message (a regex anchored at its start) raised as a ``UserWarning`` from
one Paddle module, nothing else:

- the ccache notice: Paddle looks for ccache at ``import paddle`` in case custom C++ operators are
  compiled later; this package compiles none.
- the BatchNorm notice: printed at the first training forward pass of a BatchNorm layer.
- "Skip loading for …": ``Layer.set_state_dict`` on a partial state dict. Our loader
  (:mod:`paddleseg.checkpoint.weights`) is strict by default and, in its non-strict mode, logs its own
  report of every missing, unexpected and mis-shaped key.
- the PIR 'place' notice: printed by Paddle's own static-graph code while ``export.py`` traces the model.

Where they are installed: the ccache notice fires inside ``import paddle``, so its filter must exist
before Paddle is first imported. ``paddleseg/__init__.py`` imports Paddle, and Python runs it before any
of the package's modules (this one included) can be imported, so the package itself installs the
filters, first thing, for the scripts, the tools, library users and the tests alike. That is the one
piece of process-wide state the package sets at import, and it is kept harmless: the filters are
*appended* after the interpreter's defaults, so anything the user asks for wins (``python -W error``,
``PYTHONWARNINGS``, ``warnings.simplefilter("always")`` or a pytest ``-W`` option), and installing them
twice adds nothing.
"""
import re
import warnings
from typing import Tuple

HARMLESS_WARNINGS: Tuple[Tuple[str, str], ...] = (
    (r"No ccache found", "paddle.utils.cpp_extension.extension_utils"),
    (re.escape("When training, we now always track global mean and variance."), "paddle.nn.layer.norm"),
    (r"Skip loading for ", "paddle.nn.layer.layers"),
    (re.escape("Tensor do not have 'place' interface for pir graph mode"), "paddle.pir.math_op_patch"),
)


def install() -> None:
    """Append an ``ignore`` filter for each of :data:`HARMLESS_WARNINGS` (idempotent)."""
    for message, module in HARMLESS_WARNINGS:
        # the module name must match whole (warnings only anchors the start of the regex)
        warnings.filterwarnings("ignore", message=message, category=UserWarning,
                                module=re.escape(module) + r"\Z", append=True)
