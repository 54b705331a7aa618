"""tools/op_profile.py: op names and classes of real profiler events, self times and allocations read
from Paddle's event tree, the FLOPs census and the roofline floors. The end-to-end ``--profile`` run
is in test_benchmark_train.py."""
import importlib.util
from types import SimpleNamespace

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest
from paddle.profiler import TracerEventType

from conftest import REPO


def load_op_profile():
    spec = importlib.util.spec_from_file_location("op_profile", REPO / "tools" / "op_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


op_profile = load_op_profile()


@pytest.mark.parametrize("event, name, phase, cls", [
    ("conv2d dygraph", "conv2d", "forward", "matrix-bound"),
    ("Global_Conv2dGradNodeFinal", "conv2d_grad", "backward", "matrix-bound"),
    ("matmul dygraph", "matmul", "forward", "matrix-bound"),
    ("Global_MatmulGradNode", "matmul_grad", "backward", "matrix-bound"),
    ("depthwise_conv2d dygraph", "depthwise_conv2d", "forward", "memory-bound"),
    ("Global_DepthwiseConv2dGradNode", "depthwise_conv2d_grad", "backward", "memory-bound"),
    ("Global_PreluGradNode", "prelu_grad", "backward", "memory-bound"),
    ("batch_norm dygraph", "batch_norm", "forward", "memory-bound"),
    ("Global_BatchNormGradNode", "batch_norm_grad", "backward", "memory-bound"),
    ("Global_BilinearInterpGradNode", "bilinear_interp_grad", "backward", "memory-bound"),
    ("pool2d dygraph", "pool2d", "forward", "memory-bound"),
    ("Global_AddNGradNodeFinal", "add_n_grad", "backward", "memory-bound"),
    ("concat dygraph", "concat", "forward", "memory-bound"),
    ("cross_entropy_with_softmax dygraph", "cross_entropy_with_softmax", "forward", "memory-bound"),
    ("Global_CrossEntropyWithSoftmaxGradNode", "cross_entropy_with_softmax_grad", "backward", "memory-bound"),
    ("scale dygraph", "scale", "backward", "memory-bound"),
    ("scale dygraph", "scale", "optimizer", "optimizer"),  # the L2 decay inside optimizer.step()
    ("adam_ dygraph", "adam_", "optimizer", "optimizer"),
    ("reshape dygraph", "reshape", "forward", "other"),
    ("Global_GradNodeAccumulation", "grad_node_accumulation", "backward", "other"),
])
def test_op_names_and_classes_of_profiler_events(event, name, phase, cls):
    assert op_profile.op_name(event) == name
    assert op_profile.op_class(name, phase) == cls


def node(kind, name="", start=0, end=0, children=(), allocated=()):
    mem = [SimpleNamespace(type=SimpleNamespace(name="Allocate"), increase_bytes=b) for b in allocated]
    mem.append(SimpleNamespace(type=SimpleNamespace(name="Free"), increase_bytes=-999))
    return SimpleNamespace(type=kind, name=name, start_ns=start, end_ns=end, children_node=list(children),
                           mem_node=mem)


def test_collect_ops_counts_self_time_allocations_and_the_optimizer_phase():
    op, inner = TracerEventType.Operator, TracerEventType.OperatorInner
    add_n_grad = node(op, "Global_AddNGradNodeFinal", 100, 160, [
        node(inner, "Local_AddNGradNodeFinal", 101, 159, [node(op, "scale dygraph", 110, 130, allocated=[40])])])
    step = node(TracerEventType.ProfileStep, "ProfileStep#0", 0, 1000, [
        node(TracerEventType.Forward, "Net", 0, 90, [
            node(op, "conv2d dygraph", 10, 50, [node(inner, "conv2d kernel launch", 12, 48, allocated=[256])])]),
        node(TracerEventType.Backward, "Gradient Backward", 95, 300, [add_n_grad]),
        node(TracerEventType.Optimization, "Optimization Step", 400, 600, [
            node(TracerEventType.UserDefined, "scale pybind", 401, 450, [node(op, "scale dygraph", 402, 430,
                                                                              allocated=[8])])])])
    other_thread = node(TracerEventType.UserDefined, "root", children=[node(op, "conv2d dygraph", 0, 10**9)])
    ops, step_ns, steps = op_profile.collect_ops({1: node(TracerEventType.UserDefined, "root", children=[step]),
                                                  2: other_thread})
    assert (step_ns, steps) == (1000, 1)
    assert ops[("matrix-bound", "conv2d")] == {"ns": 40, "calls": 1, "bytes": 256}
    assert ops[("memory-bound", "add_n_grad")] == {"ns": 60 - 20, "calls": 1, "bytes": 0}
    assert ops[("memory-bound", "scale")] == {"ns": 20, "calls": 1, "bytes": 40}
    assert ops[("optimizer", "scale")] == {"ns": 28, "calls": 1, "bytes": 8}
    assert len(ops) == 4  # the thread without profiled steps is not read


def test_real_profiler_events_map_to_their_classes():
    """A small conv / BN / PReLU / depthwise / resize / loss / Adam step under Paddle's profiler: the
    generated event names of this Paddle version still land in the expected classes."""
    paddle.seed(0)
    conv, bn, prelu = nn.Conv2D(3, 8, 3, padding=1), nn.BatchNorm2D(8), nn.PReLU()
    depthwise = nn.Conv2D(8, 8, 3, padding=1, groups=8)
    layers = nn.LayerList([conv, bn, prelu, depthwise])
    optimizer = paddle.optimizer.Adam(parameters=layers.parameters())
    image, label = paddle.randn([1, 3, 16, 16]), paddle.randint(0, 8, [1, 16, 16])

    def run():
        x = prelu(bn(conv(image)))
        x = F.interpolate(depthwise(x) + x, size=[16, 16], mode="bilinear", align_corners=True)
        F.cross_entropy(x, label, axis=1).backward()
        optimizer.step()
        optimizer.clear_grad()

    run()
    profiler = paddle.profiler.Profiler(targets=[paddle.profiler.ProfilerTarget.CPU], profile_memory=True,
                                        on_trace_ready=lambda _: None)
    profiler.start()
    run()
    profiler.stop()
    ops, step_ns, steps = op_profile.collect_ops(profiler.profiler_result.get_data())
    assert steps == 1
    classes = {name: cls for cls, name in ops}
    expected = {"conv2d": "matrix-bound", "conv2d_grad": "matrix-bound", "batch_norm": "memory-bound",
                "batch_norm_grad": "memory-bound", "prelu": "memory-bound", "prelu_grad": "memory-bound",
                "depthwise_conv2d": "memory-bound", "depthwise_conv2d_grad": "memory-bound",
                "bilinear_interp": "memory-bound", "bilinear_interp_grad": "memory-bound", "add": "memory-bound",
                "add_grad": "memory-bound", "cross_entropy_with_softmax": "memory-bound", "adam_": "optimizer"}
    assert {name: classes.get(name) for name in expected} == expected
    assert ops[("optimizer", "adam_")]["calls"] == sum(not p.stop_gradient for p in layers.parameters())
    assert all(v["ns"] >= 0 for v in ops.values())
    assert 0 < sum(v["ns"] for v in ops.values()) < step_ns
    assert ops[("matrix-bound", "conv2d")]["bytes"] >= 8 * 16 * 16 * 4  # at least its output


def test_matrix_flops_counts_convolutions_and_matmuls_with_their_gradients():
    class Net(nn.Layer):
        def __init__(self):
            super().__init__()
            self.dense = nn.Conv2D(3, 8, 3, padding=1)  # not "full": nn.Layer has a method of that name
            self.grouped = nn.Conv2D(8, 16, 1, groups=2)
            self.depthwise = nn.Conv2D(16, 16, 3, padding=1, groups=16)

        def forward(self, x):
            x = self.depthwise(self.grouped(self.dense(x)))
            return paddle.matmul(x, paddle.ones([8, 4]))  # a constant operand: no gradient for it

    image = paddle.randn([1, 3, 8, 8])  # stop_gradient: the first convolution has no input gradient
    net, original_matmul = Net(), paddle.matmul
    flops = op_profile.matrix_flops(net, lambda: net(image))
    dense = 2 * (8 * 8 * 8) * (3 * 3 * 3) * 2  # forward + weight gradient
    grouped = 2 * (16 * 8 * 8) * 4 * 3  # forward + weight and input gradients
    matmul = 2 * (16 * 8 * 4) * 8 * 2  # forward + input gradient
    assert flops == dense + grouped + matmul
    assert paddle.matmul is original_matmul
    assert op_profile.matrix_flops(net, lambda: net(image)) == flops  # the first census's hooks are gone


def test_class_summary_floors_shares_and_the_time_outside_ops():
    profile = {"step_ms": 100.0, "matrix_flops": 4e9, "params": 1_000_000,
               "peaks": {"gemm_gflops": 100.0, "bandwidth_gbs": 10.0},
               "ops": [{"class": "matrix-bound", "op": "conv2d", "ms": 50.0, "bytes": 1e8},
                       {"class": "memory-bound", "op": "add", "ms": 20.0, "bytes": 5e7},
                       {"class": "memory-bound", "op": "prelu", "ms": 10.0, "bytes": 5e7},
                       {"class": "optimizer", "op": "adam_", "ms": 5.0, "bytes": 0.0}]}
    s = op_profile.class_summary(profile)
    assert s["matrix-bound"]["floor_ms"] == pytest.approx(max(4e9 / 100e9, 2e8 / 10e9) * 1e3)  # 40 ms of FLOPs
    assert s["matrix-bound"]["x_floor"] == pytest.approx(50 / 40)
    assert s["memory-bound"]["floor_ms"] == pytest.approx(2e8 / 10e9 * 1e3)
    assert s["optimizer"]["bytes"] == 28 * 1_000_000
    assert s["other"]["ms"] == 0 and s["other"]["x_floor"] is None
    assert s["outside ops"]["ms"] == pytest.approx(15.0)
    assert sum(c["share"] for c in s.values()) == pytest.approx(1.0)


def test_top_ops_are_the_largest_shares_of_any_framework():
    ours = {"step_ms": 100.0, "ops": [{"class": "memory-bound", "op": "add", "ms": 30.0},
                                      {"class": "matrix-bound", "op": "conv2d", "ms": 10.0},
                                      {"class": "other", "op": "reshape", "ms": 1.0}]}
    upstream = {"step_ms": 200.0, "ops": [{"class": "matrix-bound", "op": "conv2d", "ms": 100.0},
                                          {"class": "memory-bound", "op": "prelu", "ms": 20.0}]}
    assert op_profile.top_ops({"ours": ours, "upstream": upstream}) == [
        ("memory-bound", "add"), ("matrix-bound", "conv2d"), ("memory-bound", "prelu")]
