"""Resize: the traced (gather) form equals F.interpolate(bilinear, align_corners=True), and the
eager CPU form is two GEMMs where they cost little, else F.interpolate itself; upsample_by_matmul()
equals F.interpolate, or a chain of them. Each form is the one the layer configuration builds.
Tolerance 1e-6 relative: the forms differ only in float32 rounding order of the same blend."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddleseg.models import layer_config
from paddleseg.models.layer_config import MATMUL_RESIZE_MAX_MACS, LayerConfig
from paddleseg.models.layers import Resize, matmul_resize_macs, resize_by_gather, upsample_by_matmul


def built_resize(config: LayerConfig) -> Resize:
    with layer_config.use(config):
        return Resize()

SIZES = [((5, 7), (11, 13)), ((8, 8), (16, 16)), ((17, 33), (5, 9)), ((1, 1), (4, 3)), ((4, 6), (1, 1)),
         ((32, 64), (64, 128)), ((23, 31), (23, 31)), ((9, 4), (18, 7))]


@pytest.mark.parametrize("src,dst", SIZES)
def test_gather_resize_equals_interpolate(src, dst):
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((2, 3) + src).astype("float32"))
    like = paddle.zeros([1, 1, *dst])
    ref = F.interpolate(x, size=list(dst), mode="bilinear", align_corners=True).numpy()
    out = resize_by_gather(x, like).numpy()
    assert out.shape == ref.shape
    assert np.linalg.norm(out - ref) <= 1e-6 * np.linalg.norm(ref)


@pytest.mark.parametrize("src, dst, by_matmul", [((6, 9), (13, 17), True), ((32, 64), (64, 128), True),
                                                ((128, 256), (256, 512), True), ((256, 512), (512, 1024), False)])
def test_eager_cpu_resize_takes_two_gemms_where_they_cost_little_else_interpolate(src, dst, by_matmul):
    assert (matmul_resize_macs(src, dst) <= MATMUL_RESIZE_MAX_MACS) == by_matmul
    resize = built_resize(LayerConfig(device="cpu"))
    assert resize.variant == "matmul_where_cheap"
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((1, 2) + src).astype("float32"), stop_gradient=False)
    ref_x = paddle.to_tensor(x.numpy(), stop_gradient=False)
    grad = paddle.to_tensor(np.random.default_rng(2).standard_normal((1, 2) + dst).astype("float32"))
    out = resize(x, paddle.zeros([1, 1, *dst]))
    ref = F.interpolate(ref_x, size=list(dst), mode="bilinear", align_corners=True)
    (out * grad).sum().backward()
    (ref * grad).sum().backward()
    if by_matmul:
        assert np.linalg.norm(out.numpy() - ref.numpy()) <= 1e-6 * np.linalg.norm(ref.numpy())
        assert np.linalg.norm(x.grad.numpy() - ref_x.grad.numpy()) <= 1e-6 * np.linalg.norm(ref_x.grad.numpy())
    else:
        np.testing.assert_array_equal(out.numpy(), ref.numpy())


def test_matmul_resize_cost_counts_both_products_per_output_pixel():
    # (x @ A_w^T): 2 * 3 * 5 per image and channel; A_h @ (...): 4 * 2 * 5; per output pixel (4 * 5)
    assert matmul_resize_macs((2, 3), (4, 5)) == (2 * 3 * 5 + 4 * 2 * 5) / (4 * 5)


def test_traced_resize_has_no_interp_op_and_dynamic_shapes():
    resize = built_resize(LayerConfig.for_tracing())
    assert resize.variant == "gather"

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


def values_and_gradients(fn, shape, out_shape):
    x = paddle.to_tensor(np.random.default_rng(2).standard_normal(shape).astype("float32"), stop_gradient=False)
    out = fn(x)
    out.backward(paddle.to_tensor(np.random.default_rng(3).standard_normal(out_shape).astype("float32")))
    return out.numpy(), x.grad.numpy()


def assert_close(results, ref_results, tolerance):
    for out, ref in zip(results, ref_results):
        assert out.shape == ref.shape
        assert np.linalg.norm(out - ref) <= tolerance * np.linalg.norm(ref)


@pytest.mark.parametrize("src,dst", SIZES + [((8, 16), (64, 128))])
def test_matmul_upsample_equals_interpolate_in_values_and_gradients(src, dst):
    """Same tolerance as the gather form: the same blend, summed in another order."""
    shape, out_shape = (2, 3) + src, (2, 3) + dst
    ref = values_and_gradients(lambda x: F.interpolate(x, size=list(dst), mode="bilinear", align_corners=True),
                               shape, out_shape)
    ours = values_and_gradients(lambda x: upsample_by_matmul(x, paddle.zeros([1, 1, *dst])), shape, out_shape)
    assert_close(ours, ref, 1e-6)


# the auxiliary output's level-by-level path at sizes that are multiples of 8, odd ones, and a shrink
CHAINS = [[(8, 16), (16, 32), (32, 64), (64, 128)], [(13, 17), (25, 33), (49, 66), (97, 131)],
          [(4, 6), (7, 11), (3, 2)]]


@pytest.mark.parametrize("sizes", CHAINS)
def test_matmul_upsample_through_several_sizes_equals_chained_interpolate(sizes):
    """One composed matrix per axis equals the chain of F.interpolate calls, values and gradients; 1e-6
    as above (composed in float64 and rounded once: measured ~1e-7)."""
    shape, out_shape = (2, 3) + sizes[0], (2, 3) + sizes[-1]

    def chained(x):
        for size in sizes[1:]:
            x = F.interpolate(x, size=list(size), mode="bilinear", align_corners=True)
        return x

    likes = [paddle.zeros([1, 1, *size]) for size in sizes[1:]]
    ref = values_and_gradients(chained, shape, out_shape)
    assert_close(values_and_gradients(lambda x: upsample_by_matmul(x, *likes), shape, out_shape), ref, 1e-6)


def test_traced_upsampling_through_sizes_is_the_chain_of_gather_resizes():
    sizes = CHAINS[1]
    resize = built_resize(LayerConfig.for_tracing())

    def fn(x, a, b, c):
        return resize.through(x, a, b, c)

    spec = [paddle.static.InputSpec([-1, 2, -1, -1], "float32", "x")]
    spec += [paddle.static.InputSpec([1, 1, -1, -1], "float32", name) for name in ("a", "b", "c")]
    static = paddle.jit.to_static(fn, input_spec=spec, full_graph=True)
    ops = [op.name() for op in static.get_concrete_program(*spec)[0].main_program.global_block().ops]
    assert not any("interp" in name for name in ops) and ops.count("pd_op.gather") == 3 * 4
    x = paddle.to_tensor(np.random.default_rng(4).standard_normal((1, 2) + sizes[0]).astype("float32"))
    likes = [paddle.zeros([1, 1, *size]) for size in sizes[1:]]
    ref = x
    for like in likes:
        ref = F.interpolate(ref, size=like.shape[2:], mode="bilinear", align_corners=True)
    out = static(x, *likes).numpy()
    assert np.linalg.norm(out - ref.numpy()) <= 1e-6 * np.linalg.norm(ref.numpy())


def test_matmul_upsample_needs_a_size():
    with pytest.raises(ValueError, match="at least one"):
        upsample_by_matmul(paddle.zeros([1, 1, 2, 2]))
    with pytest.raises(ValueError, match="at least one"):
        built_resize(LayerConfig.for_tracing()).through(paddle.zeros([1, 1, 2, 2]))
