"""``train.py --profiler_options``: paddle.profiler over a range of training iterations.

The option string is PaddleSeg's (``key=value`` pairs separated by ``;``), e.g.
``batch_range=[10,20];state=CPU;tracer_option=Default;profile_path=model.profile``:

=================  =====================================================================================
batch_range        ``[start,end]``: profile the iterations ``start .. end-1`` of this process, counted
                   from 0 at its first iteration (after a resume too). Default ``[10,20]``.
state              ``CPU``, ``GPU`` or ``All``: what is traced (``GPU``/``All`` add the CUDA kernels).
sorted_key         the summary table's order: ``total`` (default), ``max``, ``min`` or ``ave`` (CPU
                   time; upstream's ``calls`` has no paddle.profiler equivalent and is refused).
tracer_option      ``Default``; ``OpDetail`` / ``AllOpDetail`` add per-operator rows (and input shapes).
profile_path       the folder of the chrome trace (default ``save_dir/profile``).
timer_only         ``true``: only time the steps (throughput), no trace.
exit_on_finished   ``true``: stop training after the range (the checkpoint is saved). Upstream's
                   default is true; here it is false, so a profiled run still trains to the end.
=================  =====================================================================================

The trace is a chrome-tracing JSON file (open it in chrome://tracing or Perfetto); the summary table is
logged when the range ends.
"""
import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

logger = logging.getLogger(__name__)

_STATES = ("CPU", "GPU", "All")
_SORTED_KEYS = {"total": "CPUTotal", "max": "CPUMax", "min": "CPUMin", "ave": "CPUAvg"}
_TRACER_OPTIONS = ("Default", "OpDetail", "AllOpDetail")
_KEYS = ("batch_range", "state", "sorted_key", "tracer_option", "profile_path", "timer_only", "exit_on_finished")


@dataclass(frozen=True)
class ProfilerOptions:
    batch_range: Tuple[int, int] = (10, 20)
    state: str = "All"
    sorted_key: str = "total"
    tracer_option: str = "Default"
    profile_path: Optional[Path] = None  # None: save_dir/profile
    timer_only: bool = False
    exit_on_finished: bool = False


def _bool(key: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"{key} must be true or false, got {text!r}")


def _choice(key: str, text: str, choices) -> str:
    if text not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}, got {text!r}")
    return text


def _batch_range(text: str) -> Tuple[int, int]:
    inner = text.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        raise ValueError(f"batch_range must be [start,end], got {text!r}")
    parts = [p.strip() for p in inner[1:-1].split(",")]
    try:
        start, end = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"batch_range must be two integers [start,end], got {text!r}") from None
    if not 0 <= start < end:
        raise ValueError(f"batch_range needs 0 <= start < end, got {text!r}")
    return start, end


def parse_profiler_options(text: str) -> ProfilerOptions:
    """Parse PaddleSeg's option string; a ValueError names the key, the value and what is allowed."""
    values = {}
    for item in filter(None, (s.strip() for s in text.split(";"))):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep:
            raise ValueError(f"expected key=value, got {item!r}")
        if key not in _KEYS:
            raise ValueError(f"unknown key {key!r} (known: {', '.join(_KEYS)})")
        if key in values:
            raise ValueError(f"{key} is given twice")
        if key == "batch_range":
            values[key] = _batch_range(value)
        elif key == "state":
            values[key] = _choice(key, value, _STATES)
        elif key == "sorted_key":
            values[key] = _choice(key, value, tuple(_SORTED_KEYS))
        elif key == "tracer_option":
            values[key] = _choice(key, value, _TRACER_OPTIONS)
        elif key == "profile_path":
            if not value:
                raise ValueError("profile_path is empty")
            values[key] = Path(value)
        else:
            values[key] = _bool(key, value)
    return ProfilerOptions(**values)


class StepProfiler:
    """paddle.profiler over ``options.batch_range``: call :meth:`step` after every iteration; it returns
    True once the range is over (the trace written, the table logged)."""

    def __init__(self, options: ProfilerOptions, save_dir: Path, device: str):
        import paddle.profiler as profiler

        if options.state in ("GPU", "All") and device == "gpu":  # state=GPU on the CPU: TrainOptions.validate
            targets = [profiler.ProfilerTarget.CPU, profiler.ProfilerTarget.GPU]
        else:
            targets = [profiler.ProfilerTarget.CPU]
        self.options = options
        self.trace_dir = options.profile_path or Path(save_dir) / "profile"
        self.steps = 0
        self.finished = False
        start, end = options.batch_range
        self._profiler = profiler.Profiler(
            targets=targets, scheduler=(start, end), timer_only=options.timer_only,
            record_shapes=options.tracer_option == "AllOpDetail",
            on_trace_ready=profiler.export_chrome_tracing(str(self.trace_dir)))
        self._profiler.start()
        logger.info("profiling iterations %d to %d of this process (counted from 0); trace to %s", start, end - 1,
                    self.trace_dir)

    def step(self) -> bool:
        if self.finished:
            return True
        self.steps += 1
        self._profiler.step()
        if self.steps >= self.options.batch_range[1]:
            self.close()
        return self.finished

    def close(self) -> None:
        """Stop the profiler; once the range was reached, log its summary table."""
        if self.finished:
            return
        import paddle.profiler as profiler

        self.finished = True
        self._profiler.stop()
        if self.steps < self.options.batch_range[1]:
            logger.warning("training ended after %d iterations, before the profiled range %s ended", self.steps,
                           list(self.options.batch_range))
            return
        if self.options.timer_only:
            return
        table = io.StringIO()
        with contextlib.redirect_stdout(table):  # paddle prints the table; it goes to the log instead
            self._profiler.summary(sorted_by=getattr(profiler.SortedKeys, _SORTED_KEYS[self.options.sorted_key]),
                                   op_detail=self.options.tracer_option != "Default", time_unit="ms")
        traces = sorted(str(p) for p in Path(self.trace_dir).glob("*.json"))
        logger.info("profiler summary of iterations %d to %d (trace: %s):\n%s", self.options.batch_range[0],
                    self.options.batch_range[1] - 1, ", ".join(traces) or self.trace_dir, table.getvalue())
