"""``loss.coef`` that trains nothing (all zero, or no positive term) or is not a finite number is a
config error naming the key, before anything is read or written; ``[0, 0]`` used to train for hours
on a loss of zero."""
import pytest

from paddleseg.core.training.loop import train
from paddleseg.core.training.options import TrainOptions
from paddleseg.cvlibs import Config
from paddleseg.errors import ConfigError
from paddleseg.losses import check_coefficients

from conftest import write_train_config


@pytest.mark.parametrize("coef, message", [
    ("[0,0]", r"at least one coefficient must be positive, got \[0, 0\]"),
    ("[0,-1]", r"at least one coefficient must be positive, got \[0, -1\]"),
    ("[.nan,1]", "coefficient 0 must be a finite number, got nan"),
    ("[1,.inf]", "coefficient 1 must be a finite number, got inf"),
    ("[1,one]", "coefficient 1 must be a finite number, got 'one'"),
    ("[true,1]", "coefficient 0 must be a finite number, got True"),
])
def test_coefficients_that_train_nothing_are_a_config_error_before_anything_is_written(tmp_path, tiny_cityscapes,
                                                                                        coef, message):
    """Checked when the config is read (so val.py and export.py refuse it too), before training starts."""
    with pytest.raises(ConfigError, match=rf"--opts: loss.coef: {message}"):
        cfg = Config(write_train_config(tmp_path / "cfg.yml", tiny_cityscapes), opts=[f"loss.coef={coef}"])
        train(cfg, TrainOptions(save_dir=tmp_path / "out", check_data=False))
    assert not (tmp_path / "out").exists()


def test_a_zero_coefficient_beside_a_positive_one_is_allowed():
    check_coefficients([1, 0])  # an auxiliary head switched off
    check_coefficients([0.4, 1.0], "cfg.yml: loss.coef")
    with pytest.raises(ConfigError, match=r"^cfg.yml: loss.coef: at least one"):
        check_coefficients([0.0], "cfg.yml: loss.coef")
