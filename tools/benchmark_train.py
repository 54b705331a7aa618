"""Seconds per training iteration and peak memory of ESPNetV2 on this machine, optionally side by side
with upstream PaddleSeg 2.8 run from another virtualenv (it has the same package name, so never install
it into the project's environment).

    python tools/benchmark_train.py --iters 8 --upstream-python /tmp/upstream_venv/bin/python

One iteration is the reference recipe's training step on one batch: forward in train mode (main and
auxiliary output), the weighted cross-entropy (19 class weights, ignore 255) on both outputs with coef
[1, 1], backward, Adam (lr 1e-3, L2 weight decay 2e-4) step, clear_grad. The batch is random: a
normalised image batch (N, 3, H, W) and labels in 0..18 with about 10% ignored pixels, the same in
every framework. Ours is built from configs/espnetv2/ through the config and registry and stepped by
``paddleseg.core.training.step.step``, so this measures what train.py runs.

Each framework runs in its own process, so peak RSS (``ru_maxrss``) is one framework's alone. The
processes live side by side and the parent steps them in turn, one timed iteration each (ours,
upstream, upstream, ours, ...), so a change in the machine's background load hits both alike; the
warm-up iterations are left out. Median and p90 are over all timed iterations of a framework, and the
paired ratio is the median of ours/upstream over neighbouring iterations. ``--rounds R`` repeats this
with fresh processes; peak RSS is the largest of a framework's processes.

``--recompute`` adds a third process, ours with train.py --recompute (its blocks, its allocator
threshold), stepped in turn with ours without it, and prints its paired time ratio and its peak RSS
ratio to ours. Our processes start as train.py restarts itself, with glibc's huge pages for malloc
(paddleseg/utils/glibc_env.py).

``--profile`` then has each process of the first round, one after the other, profile
``--profile-iters`` more steps and send back the CPU time of every op; the parent prints where the
step's time goes per op class (matrix-bound, memory-bound, optimizer, other) and per top op, ours
beside upstream, and each class's roofline floor on this machine. How the ops are classified and
the floors estimated: tools/op_profile.py.

This file is also the child: ``--harness ours|ours-recompute|upstream`` serves timed iterations on stdin/stdout and
must not import this project at module level (upstream's interpreter runs it).
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "espnetv2" / "espnetv2_cityscapes_1024x512_120k.yml"
NUM_CLASSES = 19
# the reference's class weights (configs/espnet_cityscapes_1024_512_120k_x2.yml); ours reads them from CONFIG
CLASS_WEIGHTS = [2.79834108, 6.92945723, 3.84068512, 9.94349362, 9.77098823, 9.51484, 10.30981624, 9.94307377,
                 4.64933892, 9.55759938, 7.86692178, 9.53126629, 10.3496365, 6.67234062, 10.26054204,
                 10.28785275, 10.28988296, 10.40546021, 10.13848367]

Step = Callable[[object, object], None]
SCHEDULE_ITERS = 120_000  # the recipe's poly schedule length: lr stays ~1e-3 over the measured steps


def random_batch(batch_size: int, height: int, width: int, seed: int = 0):
    """(image float32 (N, 3, H, W), label int64 (N, H, W)) as paddle tensors, ~10% of labels 255."""
    import numpy as np
    import paddle

    rng = np.random.default_rng(seed)
    image = rng.standard_normal((batch_size, 3, height, width), dtype=np.float32)
    label = rng.integers(0, NUM_CLASSES, (batch_size, height, width), dtype=np.int64)
    label[rng.random(label.shape) < 0.1] = 255
    return paddle.to_tensor(image), paddle.to_tensor(label)


def ours(scale: float, iters: int, recompute: bool = False) -> Tuple[Step, object]:
    from paddleseg.core.training.options import TrainOptions
    from paddleseg.core.training.prepare import set_up_recompute
    from paddleseg.core.training.step import step
    from paddleseg.cvlibs import Config

    cfg = Config(CONFIG, opts=[f"model.scale={scale}"], iters=iters, recompute=recompute)
    model = cfg.model
    set_up_recompute(cfg, model, TrainOptions())  # as train() does
    losses = cfg.loss
    optimizer = cfg.optimizer
    model.train()

    def run(image, label) -> None:
        step(model, optimizer, None, losses, {"img": image, "label": label})

    return run, model


def upstream(scale: float, iters: int) -> Tuple[Step, object]:
    """Upstream's ESPNetV2, loss and optimizer with upstream's training step (paddleseg/core/train.py
    of 2.8: forward, loss_computation summed, backward, step, clear gradients, float(loss) to log)."""
    import paddle

    from paddleseg.models import ESPNetV2
    from paddleseg.models.losses import CrossEntropyLoss

    class Paddle3CrossEntropyLoss(CrossEntropyLoss):
        """Upstream's weighted branch of ``_post_process_loss`` op for op, but for one cast: 2.8 writes
        ``label * mask`` (int64 * float32), which Paddle 3's type promotion rejects, so with class
        weights upstream's loss does not run on Paddle 3 as released."""

        def _post_process_loss(self, logit, label, semantic_weights, loss):
            mask = paddle.cast(label != self.ignore_index, dtype="float32")
            if loss.ndim > mask.ndim:
                loss = paddle.squeeze(loss, axis=-1)
            loss = loss * mask
            one_hot = paddle.nn.functional.one_hot(label * mask.astype(label.dtype), logit.shape[-1])
            coef = paddle.sum(one_hot * self.weight, axis=-1)
            return paddle.mean(loss) / (paddle.mean(mask * coef) + self.EPS)

    model = ESPNetV2(num_classes=NUM_CLASSES, in_channels=3, scale=scale, drop_prob=0.0)
    loss = Paddle3CrossEntropyLoss(weight=CLASS_WEIGHTS, ignore_index=255)
    schedule = paddle.optimizer.lr.PolynomialDecay(1e-3, iters, end_lr=0.0, power=0.9)
    optimizer = paddle.optimizer.Adam(learning_rate=schedule, parameters=model.parameters(), weight_decay=2e-4)
    model.train()

    def run(image, label) -> None:
        logits_list = model(image)
        total = sum(coef * loss(logits, label) for coef, logits in zip([1, 1], logits_list))
        total.backward()
        optimizer.step()
        model.clear_gradients()
        float(total)

    return run, model


FRAMEWORKS = {"ours": ours, "ours-recompute": lambda scale, iters: ours(scale, iters, recompute=True),
              "upstream": upstream}


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def set_threads(kind: str, threads: int) -> None:
    """CPU math threads: ``threads`` for both frameworks, or (0) each one's default as its train.py
    runs: ours all cores, upstream paddle's own (OMP_NUM_THREADS=1, set on import)."""
    import paddle

    if kind.startswith("ours"):
        from paddleseg.utils.device import set_device
        from paddleseg.utils.memory import keep_freed_memory

        set_device("cpu", threads or None)
        keep_freed_memory(recompute=kind == "ours-recompute")  # as train.py does
    elif threads:
        # upstream's environment cannot import this package's compatibility module
        paddle.base.core.set_num_threads(threads)


def serve(kind: str, scale: float, batch_size: int, height: int, width: int, warmup: int, threads: int = 0,
          profile_iters: int = 0) -> None:
    """The child's side: build, run the warm-up, print ``ready``; then one timed iteration (seconds
    printed) per ``step`` line on stdin; at end of input print the JSON ``{"peak_rss": bytes}``, with
    ``profile_iters`` > 0 after that many profiled steps and ``"profile"`` (tools/op_profile.py)."""
    import op_profile  # beside this file; imports nothing of the project

    set_threads(kind, threads)
    run, model = FRAMEWORKS[kind](scale, SCHEDULE_ITERS)
    image, label = random_batch(batch_size, height, width)
    mkl_cpu_type = op_profile.mkl_cpu_type()  # as MKL's first call, in the first step, sees it
    for _ in range(warmup):
        run(image, label)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        start = time.perf_counter()
        run(image, label)
        print(time.perf_counter() - start, flush=True)
    result = {"peak_rss": peak_rss_bytes(), "mkl_debug_cpu_type": mkl_cpu_type}  # before profiling, whose census and peaks take memory
    if profile_iters:
        result["profile"] = op_profile.profile_training(run, model, image, label, profile_iters, mkl_cpu_type)
    print(json.dumps(result), flush=True)


class Child:
    """One framework's measuring process, stepped one iteration at a time by the parent."""

    def __init__(self, python: str, kind: str, args: argparse.Namespace, log, profile: bool = False):
        cmd = [python, str(Path(__file__).resolve()), "--harness", kind, "--scale", str(args.scale),
               "--batch-size", str(args.batch_size), "--height", str(args.height), "--width", str(args.width),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
        if profile:
            cmd += ["--profile", "--profile-iters", str(args.profile_iters)]
        self.kind, self.log = kind, log
        # upstream runs outside the repository so its interpreter cannot pick up our package
        env = dict(os.environ)
        if kind == "upstream" and args.upstream_mkl_avx2:
            env.setdefault("MKL_DEBUG_CPU_TYPE", "5")  # what ours sets for itself on AMD CPUs
        if kind.startswith("ours"):  # started as train.py restarts itself: glibc's huge pages for malloc
            from paddleseg.utils.glibc_env import environment_with_huge_pages

            env = environment_with_huge_pages(env) or env
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                        cwd="/" if kind == "upstream" else ROOT, env=env)

    def _read(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.log.seek(0)
            raise RuntimeError(f"the {self.kind} measurement failed (exit {self.process.returncode}):\n"
                               f"{self.log.read()[-3000:]}")
        return line.strip()

    def ready(self) -> None:
        if self._read() != "ready":
            raise RuntimeError(f"the {self.kind} measurement printed something unexpected before 'ready'")

    def step(self) -> float:
        self.process.stdin.write("step\n")
        self.process.stdin.flush()
        return float(self._read())

    def finish(self) -> Dict:
        """``{"peak_rss": bytes}``, and ``"profile"`` when asked for; the child profiles now, alone."""
        self.process.stdin.close()
        result = json.loads(self._read())
        self.process.wait()
        return result


def measure_round(pythons: Dict[str, str], args: argparse.Namespace, profile: bool = False) -> Dict[str, Dict]:
    """One process per framework, all alive at once; their timed iterations alternate (ours, upstream,
    upstream, ours, ...) so a change in the background load hits every framework alike. With
    ``profile``, each then profiles in turn, the other one idle."""
    with contextlib.ExitStack() as stack:
        children = [Child(python, kind, args, stack.enter_context(tempfile.TemporaryFile("w+")), profile)
                    for kind, python in pythons.items()]
        try:
            for child in children:
                child.ready()
            times: Dict[str, List[float]] = {c.kind: [] for c in children}
            for i in range(args.iters):
                for child in (children if i % 2 == 0 else children[::-1]):
                    times[child.kind].append(child.step())
            return {c.kind: {"times": times[c.kind], **c.finish()} for c in children}
        finally:
            for child in children:
                if child.process.poll() is None:
                    child.process.kill()
                    child.process.wait()


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]), numpy's default definition."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lower = int(pos)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (pos - lower)


def summarise(runs: List[Dict]) -> Dict:
    times = [t for r in runs for t in r["times"]]
    return {"median_s": statistics.median(times), "p90_s": percentile(times, 90), "iterations": len(times),
            "processes": len(runs), "peak_rss_mb": max(r["peak_rss"] for r in runs) / 2 ** 20, "times": times,
            "mkl_debug_cpu_type": runs[0].get("mkl_debug_cpu_type")}


def report(results: Dict[str, Dict], args: argparse.Namespace, profiles: Optional[Dict[str, Dict]] = None) -> Dict:
    """Print the timing table (and with ``profiles``, the per-op-class tables) and the JSON summary."""
    from prettytable import PrettyTable

    table = PrettyTable(["framework", "median s/iter", "p90 s/iter", "peak RSS MB", "iterations", "MKL_DEBUG_CPU_TYPE"])
    for name, r in results.items():
        table.add_row([name, f"{r['median_s']:.3f}", f"{r['p90_s']:.3f}", f"{r['peak_rss_mb']:.0f}",
                       f"{r['iterations']} ({r['processes']} proc.)", r.get("mkl_debug_cpu_type") or "unset"])
    print(f"ESPNetV2 scale {args.scale}, batch {args.batch_size}x3x{args.height}x{args.width}, weighted CE on "
          f"main + auxiliary output, backward, Adam; {args.warmup} warm-up + {args.iters} timed iterations per "
          f"process; CPU threads: {args.threads or 'each framework default (see --help)'}"
          f"{'; ours-recompute: train.py --recompute' if args.recompute else ''}")
    print(table)
    summary = {"scale": args.scale, "batch_size": args.batch_size, "height": args.height, "width": args.width,
               "warmup": args.warmup, "iters": args.iters, "rounds": args.rounds, "recompute": args.recompute,
               "results": results}
    if "ours" in results and "upstream" in results:
        summary["time_ratio"] = results["ours"]["median_s"] / results["upstream"]["median_s"]
        summary["memory_ratio"] = results["ours"]["peak_rss_mb"] / results["upstream"]["peak_rss_mb"]
        paired = [o / u for o, u in zip(results["ours"]["times"], results["upstream"]["times"])]
        summary["paired_time_ratio"] = statistics.median(paired)
        print(f"ours / upstream: time {summary['time_ratio']:.2f}x (medians), "
              f"{summary['paired_time_ratio']:.2f}x (median of paired iterations), "
              f"peak RSS {summary['memory_ratio']:.2f}x")
    if "ours-recompute" in results:
        plain, recomputing = results["ours"], results["ours-recompute"]
        summary["recompute_time_ratio"] = statistics.median(
            [r / o for o, r in zip(plain["times"], recomputing["times"])])
        summary["recompute_memory_ratio"] = recomputing["peak_rss_mb"] / plain["peak_rss_mb"]
        print(f"ours-recompute / ours: time {summary['recompute_time_ratio']:.2f}x (median of paired iterations), "
              f"peak RSS {summary['recompute_memory_ratio']:.2f}x")
    if profiles:
        from op_profile import report_profiles  # beside this file

        summary["profile"] = report_profiles(profiles)
    print(json.dumps(summary))
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=2.0, help="ESPNetV2 width scale (0.5, 1.0, 1.5, 2.0)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=2, help="iterations left out of the timing, per process")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per process")
    parser.add_argument("--rounds", type=int, default=1, help="fresh process pairs, one after the other")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for both frameworks (default 0: each one's own default, ours all cores, "
                             "upstream paddle's single thread)")
    parser.add_argument("--upstream-python", help="python of a virtualenv with paddleseg==2.8.0")
    parser.add_argument("--upstream-mkl-avx2", action="store_true",
                        help="run upstream with MKL_DEBUG_CPU_TYPE=5 too (like for like: our set_device sets it "
                             "on AMD CPUs; upstream as released does not)")
    parser.add_argument("--json", type=Path, help="also write the JSON summary to this file")
    parser.add_argument("--profile", action="store_true",
                        help="after the timed iterations, profile more steps per framework (first round only) and "
                             "print the time per op class next to its roofline floor (tools/op_profile.py)")
    parser.add_argument("--profile-iters", type=int, default=2, help="profiled steps per framework with --profile")
    parser.add_argument("--recompute", action="store_true",
                        help="also ours recomputing activations in the backward pass (train.py --recompute), "
                             "stepped in turn with ours without it; upstream has no such option")
    parser.add_argument("--harness", choices=sorted(FRAMEWORKS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.rounds < 1 or args.profile_iters < 1:
        parser.error("--iters, --rounds and --profile-iters must be >= 1, --warmup >= 0")
    if args.harness:  # inside a child process
        serve(args.harness, args.scale, args.batch_size, args.height, args.width, args.warmup, args.threads,
              args.profile_iters if args.profile else 0)
        return 0

    frameworks = {"ours": sys.executable}
    if args.recompute:
        frameworks["ours-recompute"] = sys.executable
    if args.upstream_python:
        if not Path(args.upstream_python).is_file():
            from paddleseg.errors import UserError

            raise UserError(f"--upstream-python {args.upstream_python}: no such file")
        frameworks["upstream"] = args.upstream_python
    runs: Dict[str, List[Dict]] = {name: [] for name in frameworks}
    for i in range(args.rounds):
        for name, result in measure_round(frameworks, args, profile=args.profile and i == 0).items():
            runs[name].append(result)
    profiles = {name: r[0]["profile"] for name, r in runs.items() if "profile" in r[0]}
    summary = report({name: summarise(r) for name, r in runs.items()}, args, profiles)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    if "--harness" in sys.argv:  # possibly upstream's interpreter: nothing of ours to import
        sys.exit(main())
    from paddleseg.utils.cli import run

    sys.exit(run(main))
