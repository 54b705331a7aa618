"""Checks of a component's constructor arguments, shared by transforms, losses, optimizers and schedules.

Each check raises a plain :class:`ValueError` naming ``Owner.argument`` and the value; the builder
(:mod:`paddleseg.cvlibs.builder`) turns it into a :class:`~paddleseg.errors.ConfigError` that also
names the config file and the key path. Components used from code get the plain ``ValueError``.

    self.prob = probability("RandomHorizontalFlip", "prob", prob)
"""
import math
from numbers import Real
from typing import Optional, Sequence, Tuple, Union

from paddleseg.deploy.images import MAX_PIXELS

Number = Union[int, float]
MAX_SIDE = 65_535  # an image side: OpenCV's resize and PNG readers in practice


def _fail(owner: str, name: str, expected: str, value) -> None:
    raise ValueError(f"{owner}.{name} must be {expected}, got {value!r}")


def number(owner: str, name: str, value, low: Optional[Number] = None, high: Optional[Number] = None, *,
           low_open: bool = False, high_open: bool = False, integer: bool = False) -> Number:
    """``value`` if it is a finite number (an integer with ``integer``) within the bounds, else ValueError.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``; None leaves that side unbounded.
    """
    kind = "an integer" if integer else "a number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high}")
    expected = f"{kind} {' and '.join(bounds)}" if bounds else ("an integer" if integer else "a finite number")
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        _fail(owner, name, expected, value)
    if integer and int(value) != value:
        _fail(owner, name, expected, value)
    if low is not None and (value <= low if low_open else value < low):
        _fail(owner, name, expected, value)
    if high is not None and (value >= high if high_open else value > high):
        _fail(owner, name, expected, value)
    return int(value) if integer else value


def positive(owner: str, name: str, value, integer: bool = False) -> Number:
    return number(owner, name, value, 0, low_open=True, integer=integer)


def non_negative(owner: str, name: str, value, integer: bool = False) -> Number:
    return number(owner, name, value, 0, integer=integer)


def probability(owner: str, name: str, value) -> float:
    return float(number(owner, name, value, 0, 1))


def label_value(owner: str, name: str, value) -> int:
    """A value a label pixel can hold: labels are read as uint8."""
    return number(owner, name, value, 0, 255, integer=True)


def numbers(owner: str, name: str, values, count: int) -> Tuple[float, ...]:
    """``count`` finite numbers (a list or tuple), as floats."""
    if not isinstance(values, (list, tuple)) or len(values) != count:
        _fail(owner, name, f"a list of {count} numbers", values)
    for i, v in enumerate(values):
        number(owner, f"{name}[{i}]", v)
    return tuple(float(v) for v in values)


def side(owner: str, name: str, value) -> int:
    """An image side in pixels: an integer in 1..:data:`MAX_SIDE`."""
    return number(owner, name, value, 1, MAX_SIDE, integer=True)


def size_pair(owner: str, name: str, value: Sequence) -> Tuple[int, int]:
    """``[width, height]``: two integers in 1..:data:`MAX_SIDE`, of at most :data:`MAX_PIXELS` pixels
    (the limit of the images read), so that a typo cannot ask for terabytes."""
    expected = f"[width, height] with two integers from 1 to {MAX_SIDE}"
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        _fail(owner, name, expected, value)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) or int(v) != v or v <= 0 \
                or v > MAX_SIDE:
            _fail(owner, name, expected, value)
    if value[0] * value[1] > MAX_PIXELS:
        _fail(owner, name, f"at most {MAX_PIXELS} pixels (width × height, the limit of the images read)", value)
    return int(value[0]), int(value[1])


def one_of(owner: str, name: str, value, choices: Sequence) -> object:
    if value not in choices:
        _fail(owner, name, f"one of {', '.join(map(str, choices))}", value)
    return value
