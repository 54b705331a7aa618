"""Config typos through train.py: exit 2, one line naming the file, the key and the nearest valid names.
(Every message in detail: tests/test_config.py; here, what the user of the entry point sees.)"""
import pytest

from conftest import write_train_config
from fault_helpers import assert_user_error, run_script, train_args

TYPOS = {
    "unknown_key": ({"iter": 6}, ["iter: unknown top-level key. Did you mean: iters?"]),
    "unknown_type": ({"model": {"type": "ESPNetv2", "num_classes": 19}},
                     ["model.type: unknown model type 'ESPNetv2'. Did you mean: ESPNetV2"]),
    "wrong_argument": ({"model": {"type": "ESPNetV2", "num_classes": 19, "scael": 0.5}},
                       ["model.scael: ESPNetV2 has no argument 'scael'. Did you mean: scale", "Valid arguments:"]),
    "wrong_value_type": ({"model": {"type": "ESPNetV2", "num_classes": 19, "scale": "big"}},
                         ["model.scale: ESPNetV2.scale expects float, got 'big'"]),
    "missing_base": ({"_base_": "nowhere.yml"}, ["_base_: file not found:", "nowhere.yml"]),
    "base_cycle": ({"_base_": "cfg.yml"}, ["_base_ cycle:", "cfg.yml -> "]),
}


@pytest.mark.slow
@pytest.mark.parametrize("typo", list(TYPOS))
def test_a_config_typo_is_exit_2_naming_file_key_and_nearest_names(tmp_path, tiny_cityscapes, typo):
    keys, fragments = TYPOS[typo]
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes, **keys)
    done = run_script("train.py", *train_args(config, tmp_path / "out"), cwd=tmp_path, timeout=60)
    error = assert_user_error(done, *fragments)
    assert "cfg.yml" in error
    assert not (tmp_path / "out").exists()  # validated before anything is written
