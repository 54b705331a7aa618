"""Bad command-line values and bad config values through train.py: exit 2, exactly one ``error:`` line
naming the flag or the key (with the file or --opts that set it) and the value, no traceback, and
nothing read or written: argument and config checks run before any data is read.
(The messages of each component in detail: tests/test_config.py, test_transforms.py, ...)"""
import pytest

from conftest import write_train_config
from fault_helpers import assert_user_error, run_script, train_args

# train.py flag and value -> fragments of the error line
FLAGS = {
    "save_interval_0": (["--save_interval", "0"], ["argument --save_interval:", "positive integer", "'0'"]),
    "save_interval_negative": (["--save_interval", "-1"], ["argument --save_interval:", "'-1'"]),
    "log_iters_0": (["--log_iters", "0"], ["argument --log_iters/--log_iter:", "'0'"]),
    "learning_rate_negative": (["--learning_rate", "-0.01"], ["argument --learning_rate:", "'-0.01'"]),
    "learning_rate_nan": (["--learning_rate", "nan"], ["argument --learning_rate:", "'nan'"]),
    "num_workers_negative": (["--num_workers", "-1"], ["argument --num_workers:", "integer >= 0", "'-1'"]),
    "keep_checkpoint_max_negative": (["--keep_checkpoint_max", "-1"], ["argument --keep_checkpoint_max:", "'-1'"]),
    "iters_0": (["--iters", "0"], ["argument --iters:", "'0'"]),
    "batch_size_0": (["--batch_size", "0"], ["argument --batch_size:", "'0'"]),
    "batch_size_not_a_number": (["--batch_size", "two"], ["argument --batch_size:", "'two'"]),
    "data_timeout_negative": (["--data_timeout", "-1"], ["argument --data_timeout:", "number >= 0", "'-1'"]),
    "cpu_threads_0": (["--cpu_threads", "0"], ["argument --cpu_threads:", "'0'"]),
    "seed_negative": (["--seed", "-1"], ["argument --seed:", "'-1'"]),
    "unknown_flag": (["--save_intervall", "5"], ["unrecognized arguments: --save_intervall", "train.py --help"]),
    # PaddleSeg 2.8 flags
    "early_stop_without_do_eval": (["--early_stop_intervals", "3"],
                                   ["argument --early_stop_intervals:", "needs --do_eval"]),
    "early_stop_0": (["--do_eval", "--early_stop_intervals", "0"], ["argument --early_stop_intervals:", "'0'"]),
    "amp_level_on_cpu": (["--device", "cpu", "--precision", "fp16", "--amp_level", "O2"],
                         ["argument --amp_level:", "AMP O2 needs a GPU"]),
    "amp_level_without_fp16": (["--amp_level", "O1"], ["argument --amp_level:", "needs --precision fp16"]),
    "amp_level_O3": (["--amp_level", "O3"], ["argument --amp_level:", "invalid choice: 'O3'"]),
    "profiler_unknown_key": (["--profiler_options", "batch_range=[1,2];colour=red"],
                             ["argument --profiler_options:", "unknown key 'colour'", "batch_range"]),
    "profiler_bad_range": (["--profiler_options", "batch_range=[5,2]"],
                           ["argument --profiler_options:", "0 <= start < end", "'[5,2]'"]),
}

# --opts override -> fragments of the error line
OPTS = {
    "scale_negative": ("model.scale=-1", ["--opts: model.scale:", "scale must be one of", "got -1"]),
    "scale_nan": ("model.scale=.nan", ["--opts: model.scale:", "got nan"]),
    "scale_unsupported": ("model.scale=3.0", ["--opts: model.scale:", "0.5, 1.0, 1.5, 2.0", "got 3.0"]),
    "num_classes_0": ("model.num_classes=0", ["--opts: model.num_classes:", "num_classes", "got 0"]),
    # sizes that would ask for terabytes before any check ran (refused before a weight is allocated)
    "num_classes_huge": ("model.num_classes=1000000000",
                         ["--opts: model.num_classes:", "at most 256", "got 1000000000"]),
    "in_channels_huge": ("model.in_channels=100000", ["--opts: model.in_channels:", "at most 64", "got 100000"]),
    "crop_huge": ("train_dataset.transforms.0.crop_size=[100000,100000]",
                  ["--opts: train_dataset.transforms[0].crop_size:", "from 1 to 65535", "got [100000, 100000]"]),
    "crop_area_huge": ("train_dataset.transforms.0.crop_size=[60000,60000]",
                       ["--opts: train_dataset.transforms[0].crop_size:", "pixels", "got [60000, 60000]"]),
    "drop_prob_2": ("model.drop_prob=2", ["--opts: model.drop_prob:", "drop_prob", "got 2"]),
    "batch_size_0": ("batch_size=0", ["--opts: batch_size:", "positive integer", "got 0"]),
    "power_negative": ("lr_scheduler.power=-2", ["--opts: lr_scheduler.power:", "PolynomialDecay.power", "got -2"]),
    "learning_rate_negative": ("lr_scheduler.learning_rate=-0.01",
                               ["--opts: lr_scheduler.learning_rate:", "got -0.01"]),
    "crop_0x0": ("train_dataset.transforms.0.crop_size=[0,0]",
                 ["--opts: train_dataset.transforms[0].crop_size:", "RandomPaddingCrop.crop_size", "got [0, 0]"]),
    "flip_prob_2": ("train_dataset.transforms.1.prob=2",
                    ["--opts: train_dataset.transforms[1].prob:", "RandomHorizontalFlip.prob", "got 2"]),
    "normalize_std_0": ("val_dataset.transforms.0.std=[0,0,0]",
                        ["--opts: val_dataset.transforms[0].std:", "Normalize.std[0]", "got 0"]),
    "loss_weight_negative": ("loss.types.0.weight=[-1]",
                             ["--opts: loss.types[0].weight:", "CrossEntropyLoss.weight[0]", "got -1"]),
    "weight_decay_negative": ("optimizer.weight_decay=-1",
                              ["--opts: optimizer.weight_decay:", "Adam.weight_decay", "got -1"]),
}
# One case of each kind runs in the quick suite, all of them in the slow one (each is a fresh interpreter).
QUICK = {"save_interval_0", "unknown_flag", "crop_0x0", "num_classes_huge", "scale_unsupported", "early_stop_without_do_eval",
         "amp_level_on_cpu", "profiler_unknown_key"}


def cases(table):
    return [pytest.param(c, marks=() if c in QUICK else pytest.mark.slow) for c in table]


@pytest.mark.parametrize("case", cases(FLAGS))
def test_a_bad_flag_value_is_exit_2_naming_flag_and_value(tmp_path, tiny_cityscapes, case):
    args, fragments = FLAGS[case]
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    done = run_script("train.py", *train_args(config, tmp_path / "out", *args), cwd=tmp_path, timeout=60)
    error = assert_user_error(done, *fragments)
    assert "usage:" not in done.stderr  # argparse's own usage text is not printed
    assert error.startswith("error: argument --") or case == "unknown_flag"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", cases(OPTS))
def test_a_bad_config_value_is_exit_2_naming_the_key_and_value(tmp_path, tiny_cityscapes, case):
    override, fragments = OPTS[case]
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    done = run_script("train.py", *train_args(config, tmp_path / "out", "--skip_data_check", "--opts", override),
                      cwd=tmp_path, timeout=60)
    assert_user_error(done, *fragments)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_bad_value_in_the_config_file_names_the_file(tmp_path, tiny_cityscapes):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes,
                                lr_scheduler={"type": "PolynomialDecay", "learning_rate": 0.005, "power": -2})
    done = run_script("train.py", *train_args(config, tmp_path / "out"), cwd=tmp_path, timeout=60)
    error = assert_user_error(done, "lr_scheduler.power: PolynomialDecay.power must be a number > 0, got -2")
    assert error.startswith(f"error: {config}: lr_scheduler.power:")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_model_with_fewer_classes_than_the_data_is_refused_before_anything_is_written(tmp_path, tiny_cityscapes):
    config = write_train_config(tmp_path / "cfg.yml", tiny_cityscapes)
    done = run_script("train.py", *train_args(config, tmp_path / "out", "--opts", "model.num_classes=5"),
                      cwd=tmp_path, timeout=60)
    assert_user_error(done, "model.num_classes is 5 but the train data set has 19 classes")
    assert not (tmp_path / "out").exists()
