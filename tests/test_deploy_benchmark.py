"""paddleseg.deploy.benchmark: the model is timed once, on the first batch, after its warm-up runs; the
table gives each stage's latency and the model's images/s."""
import numpy as np

from paddleseg.deploy.benchmark import Benchmark, latency_table


def test_latency_table_gives_each_stage_and_images_per_second():
    text = latency_table([("model (per batch)", [0.2, 0.4, 0.3]), ("read + preprocess", [0.01, 0.03]),
                          ("postprocess + save", [])], batch_size=4)
    rows = {line.split("  ")[0]: line.split()[-5:] for line in text.splitlines()[2:-1]}
    assert rows == {"model (per batch)": ["3", "300.0", "380.0", "300.0", "200.0"],
                    "read + preprocess": ["2", "20.0", "28.0", "20.0", "10.0"]}  # a stage without runs is left out
    assert text.splitlines()[-1].startswith("model: 13.33 images/s at the median (batch 4)")


def test_the_model_is_timed_on_the_first_batch_only():
    runs = []
    bench = Benchmark(warmup=2, repeats=3)
    bench.time_model(runs.append, np.zeros((2, 3, 4, 5)))
    bench.time_model(runs.append, np.zeros((1, 3, 8, 8)))
    assert len(runs) == 5 and len(bench.model_times) == 3 and bench.shape == (2, 3, 4, 5)
