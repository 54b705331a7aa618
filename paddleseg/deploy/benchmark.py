"""Latency of a prediction run: the model timed on the first batch, and the per-image stages.

    bench = Benchmark(warmup=3, repeats=20)
    bench.time_model(backend.run, x)          # called by the pipeline on the first batch
    print(latency_table([("model (per batch)", bench.model_times), ...], batch_size))
"""
import time
from typing import Callable, List, Sequence, Tuple

import numpy as np


class Benchmark:
    """Runs the model ``warmup`` times, then times ``repeats`` runs, on the first batch it is given."""

    def __init__(self, warmup: int = 3, repeats: int = 20):
        self.warmup, self.repeats = warmup, repeats
        self.model_times: List[float] = []
        self.shape: Tuple[int, ...] = ()

    def time_model(self, run: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> None:
        if self.model_times:
            return
        self.shape = tuple(x.shape)
        for _ in range(self.warmup):
            run(x)
        for _ in range(self.repeats):
            start = time.perf_counter()
            run(x)
            self.model_times.append(time.perf_counter() - start)


def latency_table(stages: Sequence[Tuple[str, Sequence[float]]], batch_size: int) -> str:
    """A plain-text table of latency per stage (ms) and the model's images/s at its median; the first
    stage is the model's (per batch of ``batch_size``)."""
    header = f"{'stage':<24}{'runs':>6}{'median':>10}{'p90':>10}{'mean':>10}{'min':>10}"
    rows = [header, "-" * len(header)]
    for name, times in stages:
        if len(times):
            t = np.asarray(times) * 1000.0
            rows.append(f"{name:<24}{len(t):>6}{np.median(t):>10.1f}{np.percentile(t, 90):>10.1f}"
                        f"{t.mean():>10.1f}{t.min():>10.1f}")
    model = np.median(np.asarray(stages[0][1]))
    rows.append(f"model: {batch_size / model:.2f} images/s at the median (batch {batch_size}); times in ms")
    return "\n".join(rows)
