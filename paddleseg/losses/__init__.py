"""Segmentation losses (registered in ``manager.LOSSES``) and how a config's ``loss`` section is applied.

A config's ``loss`` section pairs one loss and one coefficient with each output of the model, in the
order the model returns them (main output first, then the auxiliary heads)::

    loss:
      types: [{type: CrossEntropyLoss, ignore_index: 255}, {type: CrossEntropyLoss}]
      coef: [1, 0.4]

The training loop builds each entry of ``types`` and calls :func:`compute_losses` every step.
"""
import math
from numbers import Real
from typing import List, Sequence, Tuple

import paddle

from paddleseg.errors import ConfigError
from paddleseg.losses.cross_entropy import CrossEntropyLoss, OhemCrossEntropyLoss  # noqa: F401


def output_names(count: int) -> List[str]:
    """The names of ``count`` model outputs, main first: ``main, aux1, aux2, …``. The training log calls
    their loss terms ``loss_<name>``; messages spell them out (:func:`describe_outputs`)."""
    return ["main"] + [f"aux{i}" for i in range(1, count)]


def describe_outputs(count: int) -> str:
    """'main', 'main, auxiliary', 'main, auxiliary 1, auxiliary 2', …"""
    names = output_names(count)
    if count == 2:
        return "main, auxiliary"
    return ", ".join(n if n == "main" else f"auxiliary {n[3:]}" for n in names)


def check_coefficients(coefs: Sequence, where: str = "loss.coef") -> None:
    """Each coefficient a finite number and at least one positive: with all of them 0 (or negative) the
    run would train on a loss that does not fall, for hours. ``where`` names the key (and its file).
    Raises :class:`ConfigError`."""
    for i, coef in enumerate(coefs):
        if isinstance(coef, bool) or not isinstance(coef, Real) or not math.isfinite(coef):
            raise ConfigError(f"{where}: coefficient {i} must be a finite number, got {coef!r}")
    if not any(coef > 0 for coef in coefs):
        raise ConfigError(f"{where}: at least one coefficient must be positive, got {list(coefs)!r}; with none, "
                          f"training would not lower any loss")


def compute_losses(losses: Sequence, coefs: Sequence[float], logits_list: Sequence[paddle.Tensor],
                   label: paddle.Tensor, release: bool = False) -> Tuple[paddle.Tensor, List[paddle.Tensor]]:
    """``(total, terms)``: ``terms[i] = coefs[i] * losses[i](logits_list[i], label)``, ``total = sum(terms)``.

    ``release``: ``logits_list`` (then a list) gives up each output once its loss is computed (its
    entry becomes None), so an output the backward pass does not need is freed before the next loss
    runs: the training step's peak is during the losses (at 2x3x512x1024, both full-size outputs
    and both softmaxes, 80 MB each, at the second loss without this; one output less with it).

    Raises :class:`ConfigError` when ``losses``, ``coefs`` and the model's outputs are not one per output.
    """
    if len(losses) != len(logits_list):
        raise ConfigError(f"loss.types has {len(losses)} entries but the model returns {len(logits_list)} "
                          f"outputs ({describe_outputs(len(logits_list))}): give one loss per output")
    if len(coefs) != len(losses):
        raise ConfigError(f"loss.coef has {len(coefs)} entries but loss.types has {len(losses)}: "
                          f"give one coefficient per loss")
    terms = []
    for i, (loss, coef) in enumerate(zip(losses, coefs)):
        terms.append(coef * loss(logits_list[i], label))
        if release:
            logits_list[i] = None
    return paddle.add_n(terms), terms
