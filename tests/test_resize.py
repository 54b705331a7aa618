"""resize(): the traced (gather) form equals F.interpolate(bilinear, align_corners=True), and the
eager form is F.interpolate itself. Tolerance 1e-6 relative: the two differ only in float32
rounding order of the same blend."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddleseg.models.layers import _resize_by_gather, resize, upsample_by_matmul

SIZES = [((5, 7), (11, 13)), ((8, 8), (16, 16)), ((17, 33), (5, 9)), ((1, 1), (4, 3)), ((4, 6), (1, 1)),
         ((32, 64), (64, 128)), ((23, 31), (23, 31)), ((9, 4), (18, 7))]


@pytest.mark.parametrize("src,dst", SIZES)
def test_gather_resize_equals_interpolate(src, dst):
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((2, 3) + src).astype("float32"))
    like = paddle.zeros([1, 1, *dst])
    ref = F.interpolate(x, size=list(dst), mode="bilinear", align_corners=True).numpy()
    out = _resize_by_gather(x, like).numpy()
    assert out.shape == ref.shape
    assert np.linalg.norm(out - ref) <= 1e-6 * np.linalg.norm(ref)


def test_eager_resize_is_interpolate():
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((1, 2, 6, 9)).astype("float32"))
    ref = F.interpolate(x, size=[13, 17], mode="bilinear", align_corners=True).numpy()
    np.testing.assert_array_equal(resize(x, paddle.zeros([1, 1, 13, 17])).numpy(), ref)


def test_traced_resize_has_no_interp_op_and_dynamic_shapes():
    def fn(x, like):
        return resize(x, like)

    spec = [paddle.static.InputSpec([-1, 2, -1, -1], "float32"), paddle.static.InputSpec([-1, 1, -1, -1], "float32")]
    static = paddle.jit.to_static(fn, input_spec=spec, full_graph=True)
    program = static.get_concrete_program(*spec)[0].main_program
    ops = {op.name() for op in program.global_block().ops}
    assert not any("interp" in name for name in ops), ops
    assert "pd_op.gather" in ops
    for src, dst in [((5, 7), (11, 13)), ((6, 4), (3, 9))]:
        x = paddle.to_tensor(np.random.default_rng(2).standard_normal((1, 2) + src).astype("float32"))
        ref = F.interpolate(x, size=list(dst), mode="bilinear", align_corners=True).numpy()
        out = static(x, paddle.zeros([1, 1, *dst])).numpy()
        assert np.linalg.norm(out - ref) <= 1e-6 * np.linalg.norm(ref)


@pytest.mark.parametrize("src,dst", SIZES + [((8, 16), (64, 128))])
def test_matmul_upsample_equals_interpolate_in_values_and_gradients(src, dst):
    """Same tolerance as the gather form: the same blend, summed in another order."""
    data = np.random.default_rng(2).standard_normal((2, 3) + src).astype("float32")
    upstream_grad = paddle.to_tensor(np.random.default_rng(3).standard_normal((2, 3) + dst).astype("float32"))
    results = []
    for fn in (lambda x: F.interpolate(x, size=list(dst), mode="bilinear", align_corners=True),
               lambda x: upsample_by_matmul(x, paddle.zeros([1, 1, *dst]))):
        x = paddle.to_tensor(data, stop_gradient=False)
        out = fn(x)
        out.backward(upstream_grad)
        results.append((out.numpy(), x.grad.numpy()))
    (ref, ref_grad), (out, grad) = results
    assert out.shape == ref.shape and grad.shape == ref_grad.shape
    assert np.linalg.norm(out - ref) <= 1e-6 * np.linalg.norm(ref)
    assert np.linalg.norm(grad - ref_grad) <= 1e-6 * np.linalg.norm(ref_grad)
