"""Where a training step's CPU time goes, per op class, next to a roofline floor: the ``--profile`` part
of tools/benchmark_train.py.

Both sides live here. The child (ours or upstream PaddleSeg 2.8, each in its own interpreter, so this
module must not import the project) runs :func:`profile_training` after its timed iterations; the
parent prints :func:`report_profiles` of what the children sent back as JSON.

**Measured time.** ``paddle.profiler.Profiler(targets=[CPU], profile_memory=True)`` records N more
steps. The host event tree it returns (``prof.profiler_result.get_data()``, the tree Paddle's own
statistic tables are built from) is walked directly, since those tables give neither the phase of an
op nor the memory it allocates. Every ``Operator`` event is one op call: forward ops are named
``conv2d dygraph``, backward ones ``Global_Conv2dGradNodeFinal``, both normalised by :func:`op_name`
to ``conv2d`` and ``conv2d_grad``. An op's time is its own (self) time: the events of ops it calls
(``add_n_grad`` calls ``scale``) are subtracted and counted under their own names. What the step spends
outside every op (Python, the autograd engine's bookkeeping, the profiler itself) is its own row,
so the rows add up to the profiled step's wall time. ``record_shapes`` is of no use here: in eager
mode Paddle 3.3 records no input shapes.

**Op classes** (:func:`op_class`): *matrix-bound*: ``conv2d`` (1x1, group and full convolutions)
and ``matmul``, and their gradients; *memory-bound*: depthwise convolutions, BatchNorm, PReLU,
bilinear interpolation, pooling, elementwise ops (add, multiply, concat, cast, where, ...) and the
loss (``cross_entropy_with_softmax``), and their gradients; *optimizer*: every op that runs inside
``optimizer.step()`` (``adam_`` and the L2 decay's ``scale`` / ``add_n``); *other*: the rest (shape
and view ops, ``full``, gradient accumulation into leaves).

**Roofline floor** of a class = max(FLOPs / peak GFLOP/s, bytes moved / bandwidth):

- FLOPs (2 per multiply-add) are counted for the matrix-bound class only, on one extra forward pass
  (:func:`matrix_flops`): forward hooks on every ``nn.Conv2D`` that is not depthwise give output
  size x (input channels per group) x kernel area; ``paddle.matmul`` is wrapped for that pass to get
  each product's output size x inner dimension. The backward costs one more such product per
  operand that needs a gradient (the weight always; the input unless it is the image or a constant,
  such as an interpolation matrix). Products written ``x @ y`` are not seen (neither model has any).
  Depthwise 3x3 convolutions (9 multiply-adds per output element) are left out: at the default size
  they do ~2.5 GFLOP per step with their gradients, ~0.1 s at the measured matmul peak, well under
  the memory-bound class's byte floor.
- Bytes moved are 2 x the bytes an op allocates, from the profiler's memory events: every op writes
  its outputs once and reads, at the least, about as many input bytes once (unary ops read exactly
  as much, a binary add 2x, a gradient op its output gradient and one saved input). This counts
  activations in fp32 forward and backward; in-place ops allocate nothing and get no bytes, so the
  optimizer adds Adam's in-place traffic: for each trainable parameter element, param, gradient and
  two moments read, param and moments written, 7 x 4 bytes.
- Peaks, measured in each child after profiling, with its thread count: the best of 3 (2000 x 2000)
  fp32 ``paddle.matmul`` (GFLOP/s) and the best of 5 in-place ``add_`` of two 64M-element fp32
  tensors (3 x 256 MB moved per call: DRAM bandwidth as Paddle's own elementwise kernel attains it;
  in-place, so no page faults of a fresh output are timed). Paddle's CPU wheel computes GEMMs and
  convolutions with MKL 2019, which runs a generic code path on AMD CPUs unless
  ``MKL_DEBUG_CPU_TYPE=5`` is set before its first call, so each child reports the variable as it
  was before its first step.

A ratio measured/floor near 1 means the class runs at the machine's limit; a large one, that its
kernels (or the per-op overhead of many small ops) leave the hardware idle.
"""
import contextlib
import inspect
import os
import re
import time
from collections import defaultdict
from typing import Callable, Dict, Iterator, List, Optional, Tuple

OP_CLASSES = ("matrix-bound", "memory-bound", "optimizer", "other")
OUTSIDE_OPS = "outside ops"  # the step's time in no op: Python, autograd bookkeeping, the profiler
MATRIX_OPS = frozenset({"conv2d", "matmul"})
MEMORY_OPS = frozenset({
    "depthwise_conv2d", "batch_norm", "prelu", "leaky_relu", "relu", "bilinear_interp", "pool2d",
    "cross_entropy_with_softmax", "softmax", "add", "subtract", "multiply", "divide", "scale", "add_n",
    "concat", "split", "cast", "where", "not_equal", "equal", "clip", "sum", "mean", "one_hot", "gather",
    "gather_nd", "index_elementwise_get", "full_like", "transpose", "pad", "dropout",
})
OPTIMIZER_OPS = frozenset({"adam_", "adamw_", "sgd_", "momentum_"})
BYTES_PER_ALLOCATED_BYTE = 2  # outputs written once + about as many input bytes read once
ADAM_BYTES_PER_PARAM = 7 * 4  # param, grad, moment1, moment2 read; param, moments written (fp32)
MKL_VARIABLE = "MKL_DEBUG_CPU_TYPE"
GEMM_SIZE = 2000  # not a power of two: MKL runs 2048-square products at a tenth of its speed here (cache aliasing)
BANDWIDTH_ELEMENTS = 64 * 2 ** 20


def mkl_cpu_type() -> Optional[str]:
    """:data:`MKL_VARIABLE` as this process sees it (None: unset)."""
    return os.environ.get(MKL_VARIABLE)


def op_name(event_name: str) -> str:
    """The op of a profiler ``Operator`` event: ``conv2d dygraph`` -> ``conv2d``,
    ``Global_DepthwiseConv2dGradNode`` -> ``depthwise_conv2d_grad``, ``Global_AddNGradNodeFinal`` ->
    ``add_n_grad``, ``Global_GradNodeAccumulation`` -> ``grad_node_accumulation``."""
    if event_name.endswith(" dygraph"):
        return event_name[:-len(" dygraph")]
    if not event_name.startswith("Global_"):
        return event_name
    name = re.sub(r"(GradNode|GradNodeFinal)$", "Grad", event_name[len("Global_"):])
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)  # Conv2dGrad -> Conv2d_Grad
    return re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()  # AddNGrad -> Add_N_Grad


def op_class(name: str, phase: str) -> str:
    """One of :data:`OP_CLASSES` for an op (:func:`op_name`) run in ``phase`` (``forward``, which
    includes the loss, ``backward`` or ``optimizer``)."""
    if phase == "optimizer" or name in OPTIMIZER_OPS:
        return "optimizer"
    base = name[:-len("_grad")] if name.endswith("_grad") else name
    if base in MATRIX_OPS:
        return "matrix-bound"
    if base in MEMORY_OPS:
        return "memory-bound"
    return "other"


def collect_ops(trees: Dict[int, object]) -> Tuple[Dict[Tuple[str, str], Dict[str, int]], int, int]:
    """Self time (ns), calls and allocated bytes of every op in the profiler's host event trees
    (``profiler_result.get_data()``), keyed by (class, op name); and the wall time (ns) and number of
    the profiled steps. Only threads that ran the profiled steps are read."""
    from paddle.profiler import TracerEventType

    phases = {TracerEventType.Forward: "forward", TracerEventType.Backward: "backward",
              TracerEventType.Optimization: "optimizer"}
    ops: Dict[Tuple[str, str], Dict[str, int]] = defaultdict(lambda: {"ns": 0, "calls": 0, "bytes": 0})
    steps = {"ns": 0, "count": 0}

    def visit(node, phase: str, op: Optional[Tuple[str, str]]) -> int:
        """Adds up the subtree's ops; returns the time its outermost ops cover (an enclosing op's
        self time excludes it)."""
        if op is not None:
            ops[op]["bytes"] += sum(m.increase_bytes for m in node.mem_node if m.type.name == "Allocate")
        covered = 0
        for child in node.children_node:
            child_phase = phases.get(child.type, phase)
            duration = child.end_ns - child.start_ns
            if child.type == TracerEventType.Operator:
                name = op_name(child.name)
                key = (op_class(name, child_phase), name)
                ops[key]["ns"] += duration - visit(child, child_phase, key)
                ops[key]["calls"] += 1
                covered += duration
            else:
                if child.type == TracerEventType.ProfileStep:
                    steps["ns"] += duration
                    steps["count"] += 1
                covered += visit(child, child_phase, op)
        return covered

    for root in trees.values():
        if any(child.type == TracerEventType.ProfileStep for child in root.children_node):
            visit(root, "forward", None)
    return dict(ops), steps["ns"], steps["count"]


@contextlib.contextmanager
def _counting_matmul(flops: List[int]) -> Iterator[None]:
    """``paddle.matmul`` adds each product's training FLOPs to ``flops[0]`` while the block runs."""
    import numpy as np
    import paddle

    original = paddle.matmul
    signature = inspect.signature(original)

    def matmul(x, y, *args, **kwargs):
        out = original(x, y, *args, **kwargs)
        transpose_x = signature.bind(x, y, *args, **kwargs).arguments.get("transpose_x", False)
        inner = x.shape[-2] if transpose_x and len(x.shape) > 1 else x.shape[-1]
        passes = 1 + (not x.stop_gradient) + (not y.stop_gradient)
        flops[0] += 2 * int(np.prod(out.shape)) * inner * passes
        return out

    paddle.matmul = matmul
    try:
        yield
    finally:
        paddle.matmul = original


def matrix_flops(model, forward: Callable[[], object]) -> int:
    """FLOPs of one training step's matrix-bound ops (convolutions that are not depthwise, and
    ``paddle.matmul``), counted on the forward pass ``forward()`` runs with gradients on: 2 per
    multiply-add, times 1 (forward) + 1 per operand that needs a gradient (weight, input)."""
    import numpy as np
    import paddle.nn as nn

    flops = [0]

    def on_conv(layer, inputs, output):
        x, weight = inputs[0], layer.weight
        if weight.shape[1] == 1 and x.shape[1] > 1:  # depthwise (Paddle's depthwise_conv2d): memory-bound
            return
        macs = int(np.prod(output.shape)) * int(np.prod(weight.shape[1:]))
        flops[0] += 2 * macs * (1 + (not weight.stop_gradient) + (not x.stop_gradient))

    hooks = [layer.register_forward_post_hook(on_conv) for layer in model.sublayers()
             if isinstance(layer, nn.Conv2D)]
    try:
        with _counting_matmul(flops):
            forward()
    finally:
        for hook in hooks:
            hook.remove()
    return flops[0]


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: first-call setup and page faults are not the machine's peak
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure_peaks(gemm_size: int = GEMM_SIZE, elements: int = BANDWIDTH_ELEMENTS) -> Dict[str, float]:
    """This process's fp32 matrix-product GFLOP/s (best of 3 ``gemm_size``-square products) and
    memory bandwidth in GB/s (best of 5 in-place adds of two ``elements``-long tensors, 12 bytes moved
    per element: two read, one written), with the thread count already set."""
    import paddle

    a, b = paddle.randn([gemm_size, gemm_size]), paddle.randn([gemm_size, gemm_size])
    gemm_s = _best_seconds(lambda: paddle.matmul(a, b), 3)
    x, y = paddle.ones([elements]), paddle.ones([elements])
    add_s = _best_seconds(lambda: x.add_(y), 5)
    return {"gemm_gflops": 2 * gemm_size ** 3 / gemm_s / 1e9, "bandwidth_gbs": 12 * elements / add_s / 1e9,
            "gemm_size": gemm_size, "bandwidth_elements": elements}


def profile_training(run: Callable[[object, object], None], model, image, label, iters: int,
                     mkl_cpu_type: Optional[str]) -> Dict:
    """The child's side: ``iters`` training steps ``run(image, label)`` under the profiler, the
    matrix FLOPs of one step, the trainable parameters and this process's peaks, as plain JSON data
    (op times and bytes per step). ``mkl_cpu_type``: :data:`MKL_VARIABLE` before the first step."""
    import numpy as np
    import paddle.profiler as profiler

    flops = matrix_flops(model, lambda: model(image))
    params = sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)
    # the tree is read below; the default on_trace_ready would write a trace into ./profiler_log/
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], profile_memory=True,
                             on_trace_ready=lambda _: None)
    prof.start()
    for i in range(iters):
        run(image, label)
        if i < iters - 1:
            prof.step()
    prof.stop()
    ops, step_ns, steps = collect_ops(prof.profiler_result.get_data())
    if steps != iters:
        raise RuntimeError(f"the profiler recorded {steps} steps, {iters} were run")
    return {"iters": iters, "step_ms": step_ns / iters / 1e6, "matrix_flops": flops, "params": params,
            "mkl_debug_cpu_type": mkl_cpu_type, "peaks": measure_peaks(),
            "ops": [{"class": cls, "op": name, "ms": v["ns"] / iters / 1e6, "calls": v["calls"] / iters,
                     "bytes": v["bytes"] / iters} for (cls, name), v in sorted(ops.items())]}


def class_summary(profile: Dict) -> Dict[str, Dict[str, float]]:
    """Per op class of one child's :func:`profile_training`: ms and share of the step, FLOPs, bytes
    moved, floor ms and measured/floor; plus :data:`OUTSIDE_OPS`. All per step."""
    peaks = profile["peaks"]
    classes = {cls: {"ms": 0.0, "flops": 0.0, "bytes": 0.0} for cls in OP_CLASSES}
    for op in profile["ops"]:
        classes[op["class"]]["ms"] += op["ms"]
        classes[op["class"]]["bytes"] += BYTES_PER_ALLOCATED_BYTE * op["bytes"]
    classes["matrix-bound"]["flops"] = profile["matrix_flops"]
    classes["optimizer"]["bytes"] += ADAM_BYTES_PER_PARAM * profile["params"]
    for c in classes.values():
        c["floor_ms"] = 1e3 * max(c["flops"] / (peaks["gemm_gflops"] * 1e9),
                                  c["bytes"] / (peaks["bandwidth_gbs"] * 1e9))
        c["x_floor"] = c["ms"] / c["floor_ms"] if c["floor_ms"] > 0 else None
    classes[OUTSIDE_OPS] = {"ms": profile["step_ms"] - sum(c["ms"] for c in classes.values())}
    for c in classes.values():
        c["share"] = c["ms"] / profile["step_ms"]
    return classes


def top_ops(profiles: Dict[str, Dict], min_share: float = 0.02, limit: int = 15) -> List[Tuple[str, str]]:
    """(class, op) of the ops with at least ``min_share`` of the step in any framework, most time first
    (in the first framework, then the others), at most ``limit``."""
    def shares(profile):
        return {(op["class"], op["op"]): op["ms"] / profile["step_ms"] for op in profile["ops"]}

    per_framework = [shares(p) for p in profiles.values()]
    keys = {k for s in per_framework for k, v in s.items() if v >= min_share}
    return sorted(keys, key=lambda k: [-s.get(k, 0.0) for s in per_framework])[:limit]


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def report_profiles(profiles: Dict[str, Dict]) -> Dict:
    """Print the peaks, the time table (classes and top ops, frameworks side by side) and the
    roofline table; return them as JSON data for the summary."""
    from prettytable import PrettyTable

    for name, p in profiles.items():
        peaks = p["peaks"]
        print(f"{name}: {p['iters']} profiled step(s) of {_ms(p['step_ms'])} ms; peaks: {peaks['gemm_size']}^2 fp32 "
              f"matmul {peaks['gemm_gflops']:.1f} GFLOP/s, in-place add of {peaks['bandwidth_elements'] >> 20}M "
              f"floats {peaks['bandwidth_gbs']:.1f} GB/s; {MKL_VARIABLE}="
              f"{p['mkl_debug_cpu_type'] if p['mkl_debug_cpu_type'] is not None else 'unset'}")
    summaries = {name: class_summary(p) for name, p in profiles.items()}
    times = PrettyTable(["op class / op"] + [f"{name} {col}" for name in profiles for col in ("ms/step", "share")])
    times.align["op class / op"] = "l"
    for cls in (*OP_CLASSES, OUTSIDE_OPS):
        times.add_row([cls] + [v for s in summaries.values() for v in (_ms(s[cls]["ms"]), f"{s[cls]['share']:.1%}")])
    times.add_row(["profiled step"] + [v for p in profiles.values() for v in (_ms(p["step_ms"]), "100%")],
                  divider=True)
    tops = top_ops(profiles)
    for cls, op in tops:
        row = [f"{op} ({cls})"]
        for p in profiles.values():
            ms = sum(o["ms"] for o in p["ops"] if (o["class"], o["op"]) == (cls, op))
            row += [_ms(ms), f"{ms / p['step_ms']:.1%}"]
        times.add_row(row)
    print(times)
    roofline = PrettyTable(["framework", "op class", "GFLOP", "GB moved", "floor ms", "measured ms", "measured/floor"])
    for name, s in summaries.items():
        for cls in OP_CLASSES:
            c = s[cls]
            roofline.add_row([name, cls, f"{c['flops'] / 1e9:.3g}" if c["flops"] else "-", f"{c['bytes'] / 1e9:.3g}",
                              _ms(c["floor_ms"]), _ms(c["ms"]),
                              f"{c['x_floor']:.1f}x" if c["x_floor"] is not None else "-"])
    print(roofline)
    print(f"floor = max(GFLOP / matmul peak, GB moved / add peak); GFLOP: convolutions (not depthwise) and matmuls, "
          f"forward + gradients; GB moved: {BYTES_PER_ALLOCATED_BYTE} x the bytes the class's ops allocate, plus "
          f"{ADAM_BYTES_PER_PARAM} B per parameter for Adam's in-place update; all per step")
    return {name: {"step_ms": p["step_ms"], "iters": p["iters"], "peaks": p["peaks"],
                   "mkl_debug_cpu_type": p["mkl_debug_cpu_type"], "classes": summaries[name],
                   "top_ops": [o for o in p["ops"] if (o["class"], o["op"]) in tops]}
            for name, p in profiles.items()}
