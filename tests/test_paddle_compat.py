"""Every private Paddle attribute the project relies on still exists in the installed Paddle: a
Paddle upgrade that removes or renames one fails here, by name, instead of silently switching a
feature off (the data-loader timeout, CPU threads, fast PReLU, optimizer-state keys)."""
import importlib

import numpy as np
import paddle
import pytest

from paddleseg.utils import paddle_compat


def resolve(description: str):
    if description == "paddle.nn.PReLU instance":
        return paddle.nn.PReLU()
    module, _, name = description.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return importlib.import_module(description)


@pytest.mark.parametrize("owner, attribute", paddle_compat.PRIVATE_ATTRIBUTES,
                         ids=[f"{o}.{a}" for o, a in paddle_compat.PRIVATE_ATTRIBUTES])
def test_the_private_attribute_exists(owner, attribute):
    assert hasattr(resolve(owner), attribute), f"Paddle {paddle.__version__} has no {owner}.{attribute}"


def test_accumulator_names_follow_the_parameter_name():
    layer = paddle.nn.Linear(3, 2)
    optimizer = paddle.optimizer.Adam(parameters=layer.parameters())
    layer(paddle.ones([1, 3])).sum().backward()
    optimizer.step()
    names = paddle_compat.generated_parameter_names(layer)
    keys = [k for k in optimizer.state_dict() if k != "LR_Scheduler"]
    assert keys and all(paddle_compat.split_accumulator_name(k, names) is not None for k in keys)
    owner, accumulator = paddle_compat.split_accumulator_name(keys[0], names)
    assert paddle_compat.accumulator_name(owner, accumulator) == keys[0]
    assert {a for _, a in (paddle_compat.split_accumulator_name(k, names) for k in keys)} >= {"moment1_0", "moment2_0"}


def test_prelu_slope_can_be_read_and_replaced():
    layer = paddle.nn.PReLU(num_parameters=1, init=0.3)
    assert paddle_compat.prelu_slope_count(layer) == 1
    np.testing.assert_allclose(paddle_compat.prelu_slope(layer).numpy(), [0.3], rtol=1e-6)
    wider = layer.create_parameter([4], dtype="float32")
    wider.set_value(paddle.full([4], 0.3))
    paddle_compat.set_prelu_slope(layer, wider)
    out = layer(-paddle.ones([1, 4, 2, 2]))
    np.testing.assert_allclose(out.numpy(), -0.3, rtol=1e-6)
    assert paddle_compat.prelu_slope_count(layer) == 4
    assert paddle_compat.prelu_slope(layer) is wider
    assert list(layer.state_dict()) == ["_weight"] and layer.state_dict()["_weight"].shape == [4]  # what export saves
    assert "num_parameters=4" in layer.extra_repr()
