"""CrossEntropyLoss and OhemCrossEntropyLoss against NumPy references; compute_losses pairing.

Tolerance: float32 log-softmax over <= 19 classes vs a float64 NumPy reference agrees to ~1e-6
relative; we allow 1e-5.
"""
import weakref

import numpy as np
import paddle
import pytest

from paddleseg.cvlibs import builder, manager
from paddleseg.errors import ConfigError
from paddleseg.losses import CrossEntropyLoss, OhemCrossEntropyLoss, compute_losses

RTOL = 1e-5
IGNORE = 255


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _true_class_nll(logits: np.ndarray, label: np.ndarray) -> np.ndarray:
    """-log p(y) per pixel (N, H, W); 0 where ignored."""
    logp = _log_softmax(logits)
    safe = np.where(label == IGNORE, 0, label)
    nll = -np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    return np.where(label == IGNORE, 0.0, nll)


def _numpy_ce(logits: np.ndarray, label: np.ndarray, weight=None) -> float:
    valid = label != IGNORE
    w = np.ones(logits.shape[1]) if weight is None else np.asarray(weight, np.float64)
    pixel_w = np.where(valid, w[np.where(valid, label, 0)], 0.0)
    if pixel_w.sum() == 0:
        return 0.0
    return float((pixel_w * _true_class_nll(logits, label)).sum() / pixel_w.sum())


def _sample(n=2, c=5, h=6, w=7, ignored_fraction=0.3, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, c, h, w)).astype(np.float32)
    label = rng.integers(0, c, size=(n, h, w)).astype(np.int64)
    label[rng.random((n, h, w)) < ignored_fraction] = IGNORE
    return logits, label


def _loss(loss, logits: np.ndarray, label: np.ndarray) -> float:
    return float(loss(paddle.to_tensor(logits), paddle.to_tensor(label)))


def test_weighted_ce_with_ignore_index_matches_numpy():
    # the case Paddle 2.1.2 got wrong: class weights together with ignored pixels
    logits, label = _sample()
    weight = [0.5, 2.0, 1.0, 3.5, 0.1]
    got = _loss(CrossEntropyLoss(weight=weight, ignore_index=IGNORE), logits, label)
    np.testing.assert_allclose(got, _numpy_ce(logits, label, weight), rtol=RTOL)
    # normalised by the weight sum, not the pixel count
    valid = label != IGNORE
    by_count = (np.asarray(weight)[label[valid]] * _true_class_nll(logits, label)[valid]).mean()
    assert abs(got - by_count) > 1e-3


def test_unweighted_ce_is_the_mean_over_valid_pixels():
    logits, label = _sample(seed=1)
    got = _loss(CrossEntropyLoss(), logits, label)
    expected = _true_class_nll(logits, label)[label != IGNORE].mean()
    np.testing.assert_allclose(got, expected, rtol=RTOL)


@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 3.0, 4.0, 5.0]])
def test_batch_without_valid_pixel_gives_zero_loss_and_zero_gradient(weight):
    logits, _ = _sample()
    label = np.full((2, 6, 7), IGNORE, np.int64)
    x = paddle.to_tensor(logits, stop_gradient=False)
    loss = CrossEntropyLoss(weight=weight)(x, paddle.to_tensor(label))
    loss.backward()
    assert float(loss) == 0.0
    assert np.all(x.grad.numpy() == 0.0)


def test_weighted_ce_gradient_matches_numpy():
    logits, label = _sample(seed=2)
    weight = np.array([0.5, 2.0, 1.0, 3.5, 0.1])
    x = paddle.to_tensor(logits, stop_gradient=False)
    CrossEntropyLoss(weight=list(weight))(x, paddle.to_tensor(label)).backward()
    valid = label != IGNORE
    safe = np.where(valid, label, 0)
    pixel_w = np.where(valid, weight[safe], 0.0)
    onehot = np.eye(5)[safe].transpose(0, 3, 1, 2)
    expected = (np.exp(_log_softmax(logits)) - onehot) * pixel_w[:, None] / pixel_w.sum()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-4, atol=1e-7)


def test_nhwc_logits_give_the_same_loss_as_nchw():
    logits, label = _sample(seed=3)
    weight = [1.0, 2.0, 1.0, 0.5, 1.0]
    nchw = _loss(CrossEntropyLoss(weight=weight), logits, label)
    nhwc = _loss(CrossEntropyLoss(weight=weight, data_format="NHWC"), logits.transpose(0, 2, 3, 1), label)
    np.testing.assert_allclose(nhwc, nchw, rtol=RTOL)


def test_label_with_a_channel_axis_is_accepted():
    logits, label = _sample(seed=4)
    np.testing.assert_allclose(_loss(CrossEntropyLoss(), logits, label[:, None]),
                               _loss(CrossEntropyLoss(), logits, label), rtol=RTOL)


def test_weight_of_wrong_length_names_both_lengths():
    logits, label = _sample(c=5)
    with pytest.raises(ConfigError, match="3 entries.*5 classes"):
        _loss(CrossEntropyLoss(weight=[1.0, 1.0, 1.0]), logits, label)


def test_label_of_wrong_size_is_a_clear_error():
    logits, label = _sample()
    with pytest.raises(ValueError, match="does not fit logits"):
        _loss(CrossEntropyLoss(), logits, label[:, :-1])


def test_ce_is_registered_and_builds_from_a_config_mapping():
    loss = builder.build_component({"type": "CrossEntropyLoss", "weight": [1, 2], "ignore_index": 0},
                                   manager.LOSSES)
    assert isinstance(loss, CrossEntropyLoss)
    assert loss.weight == [1.0, 2.0] and loss.ignore_index == 0
    with pytest.raises(ConfigError, match="ignore_idx"):
        builder.check_component({"type": "CrossEntropyLoss", "ignore_idx": 0}, "loss.types[0]", manager.LOSSES)


# ---- OHEM -----------------------------------------------------------------------------------
def _true_class_prob(logits, label):
    return np.exp(-_true_class_nll(logits, label))


def test_ohem_without_min_kept_averages_the_pixels_below_thresh():
    logits, label = _sample(seed=5)
    nll, prob, valid = _true_class_nll(logits, label), _true_class_prob(logits, label), label != IGNORE
    hard = valid & (prob < 0.6)
    assert 0 < hard.sum() < valid.sum()
    got = _loss(OhemCrossEntropyLoss(thresh=0.6, min_kept=0), logits, label)
    np.testing.assert_allclose(got, nll[hard].mean(), rtol=RTOL)


def test_ohem_keeps_the_min_kept_hardest_pixels_when_few_are_below_thresh():
    logits, label = _sample(seed=6)
    nll, valid = _true_class_nll(logits, label), label != IGNORE
    hardest = np.sort(nll[valid])[::-1][:10]  # the 10 lowest true-class probabilities
    got = _loss(OhemCrossEntropyLoss(thresh=0.0, min_kept=10), logits, label)
    np.testing.assert_allclose(got, hardest.mean(), rtol=RTOL)


def test_ohem_min_kept_larger_than_the_valid_pixels_keeps_them_all():
    logits, label = _sample(seed=7)
    got = _loss(OhemCrossEntropyLoss(thresh=0.0, min_kept=10**6), logits, label)
    np.testing.assert_allclose(got, _true_class_nll(logits, label)[label != IGNORE].mean(), rtol=RTOL)


def test_ohem_with_many_hard_pixels_ignores_min_kept():
    logits, label = _sample(seed=8)
    nll, prob, valid = _true_class_nll(logits, label), _true_class_prob(logits, label), label != IGNORE
    hard = valid & (prob < 0.9)
    assert hard.sum() > 3
    got = _loss(OhemCrossEntropyLoss(thresh=0.9, min_kept=3), logits, label)
    np.testing.assert_allclose(got, nll[hard].mean(), rtol=RTOL)


def test_ohem_without_valid_pixel_gives_zero():
    logits, _ = _sample()
    label = np.full((2, 6, 7), IGNORE, np.int64)
    assert _loss(OhemCrossEntropyLoss(), logits, label) == 0.0


# ---- compute_losses ---------------------------------------------------------------------------
def test_compute_losses_weights_each_output_with_its_coefficient():
    logits, label = _sample(seed=9)
    aux, _ = _sample(seed=10)
    losses = [CrossEntropyLoss(), CrossEntropyLoss(weight=[1, 2, 3, 4, 5])]
    total, terms = compute_losses(losses, [1.0, 0.4], [paddle.to_tensor(logits), paddle.to_tensor(aux)],
                                  paddle.to_tensor(label))
    expected = [_numpy_ce(logits, label), 0.4 * _numpy_ce(aux, label, [1, 2, 3, 4, 5])]
    np.testing.assert_allclose([float(t) for t in terms], expected, rtol=RTOL)
    np.testing.assert_allclose(float(total), sum(expected), rtol=RTOL)


def test_compute_losses_with_release_gives_up_each_output_and_the_same_losses_and_gradients():
    """The training step passes ``release=True``: an output is dropped once its loss is computed (its
    memory goes before the next loss runs), and nothing else changes."""
    logits, label = _sample(seed=9)
    aux, _ = _sample(seed=10)
    results = []
    for release in (False, True):
        inputs = [paddle.to_tensor(logits, stop_gradient=False), paddle.to_tensor(aux, stop_gradient=False)]
        outputs = [x * 2 for x in inputs]  # non-leaf outputs, as a model's are
        watched = [weakref.ref(o) for o in outputs]
        total, terms = compute_losses([CrossEntropyLoss(), CrossEntropyLoss(weight=[1, 2, 3, 4, 5])], [1.0, 0.4],
                                      outputs, paddle.to_tensor(label), release=release)
        assert outputs == ([None, None] if release else outputs)
        assert all(w() is None for w in watched) == release  # freed: only the list held them
        total.backward()
        results.append(([float(t) for t in terms], [x.grad.numpy() for x in inputs]))
    (terms_kept, grads_kept), (terms_released, grads_released) = results
    assert terms_kept == terms_released
    for a, b in zip(grads_kept, grads_released):
        np.testing.assert_array_equal(a, b)


def test_compute_losses_rejects_one_loss_for_two_outputs():
    logits, label = _sample()
    x = paddle.to_tensor(logits)
    with pytest.raises(ConfigError, match=r"loss.types has 1 entries but the model returns 2 outputs "
                                          r"\(main, auxiliary\)"):
        compute_losses([CrossEntropyLoss()], [1.0], [x, x], paddle.to_tensor(label))
    with pytest.raises(ConfigError, match="loss.coef has 1 entries"):
        compute_losses([CrossEntropyLoss(), CrossEntropyLoss()], [1.0], [x, x], paddle.to_tensor(label))


@pytest.mark.parametrize("cls, arguments, message", [
    (CrossEntropyLoss, {"weight": [1.0, -2.0]}, "CrossEntropyLoss.weight[1] must be a number >= 0, got -2.0"),
    (CrossEntropyLoss, {"weight": [0, 0]}, "CrossEntropyLoss.weight must not be all 0"),
    (CrossEntropyLoss, {"data_format": "CHW"}, "CrossEntropyLoss.data_format must be one of NCHW, NHWC, got 'CHW'"),
    (OhemCrossEntropyLoss, {"thresh": 1.5}, "OhemCrossEntropyLoss.thresh must be a number >= 0 and <= 1, got 1.5"),
    (OhemCrossEntropyLoss, {"min_kept": -1}, "OhemCrossEntropyLoss.min_kept must be an integer >= 0, got -1"),
])
def test_bad_arguments_are_value_errors_naming_the_argument_and_value(cls, arguments, message):
    """Plain ValueErrors; the config builder turns them into ConfigErrors naming the file and key."""
    with pytest.raises(ValueError) as raised:
        cls(**arguments)
    assert str(raised.value).startswith(message)
