"""paddleseg.core.training.options: train.py's flags become TrainOptions in one step, and every rule between
options is checked in one place, worded as a flag error for train.py and as a message for library callers."""
import dataclasses
from pathlib import Path

import pytest

from paddleseg.core.profiling import parse_profiler_options
from paddleseg.core.training.options import OptionError, TrainOptions

from test_recompute import load_train_script


def test_the_parsed_flags_become_the_options_by_name(tmp_path):
    args = load_train_script().parse_args(["--config", str(tmp_path / "my_run.yml"), "--do_eval", "--seed", "3",
                                           "--no_shared_memory", "--skip_data_check", "--num_workers", "2",
                                           "--use_ema", "--early_stop_intervals", "4"])
    opts = TrainOptions.from_args(args, device="cpu")
    assert opts.save_dir == Path("output") / "my_run" and opts.device == "cpu"
    assert (opts.do_eval, opts.seed, opts.num_workers, opts.use_ema, opts.early_stop_intervals) == (True, 3, 2, True, 4)
    assert opts.use_shared_memory is False and opts.check_data is False
    assert opts.eval_num_workers is None and opts.amp_level is None and opts.amp == "O1"
    flags = set(vars(args))
    library_only = {"ema_decay", "use_shared_memory", "check_data"}  # no flag of that name (the last two negated)
    assert {f.name for f in dataclasses.fields(TrainOptions)} - flags == library_only


@pytest.mark.parametrize("options, flag, message", [
    (dict(early_stop_intervals=2), "--early_stop_intervals", "--early_stop_intervals needs --do_eval"),
    (dict(amp_level="O1"), "--amp_level", "--amp_level needs --precision fp16"),
    (dict(amp_level="O2", precision="fp16"), "--amp_level", "AMP O2 needs a GPU"),
    (dict(profiler_options=parse_profiler_options("state=GPU")), "--profiler_options", "state=GPU needs a GPU"),
])
def test_each_rule_names_its_flag(options, flag, message):
    with pytest.raises(OptionError, match=message) as error:
        TrainOptions(**options).validate()
    assert error.value.flag == flag and str(error.value).startswith(flag)


def test_rules_that_need_the_device_wait_for_it_and_recompute_names_where_it_was_turned_on():
    TrainOptions(device="auto", precision="fp16", amp_level="O2").validate()  # train.py checks again once resolved
    with pytest.raises(OptionError, match=r"^cfg.yml: recompute: recompute cannot be combined with --to_static"):
        TrainOptions(to_static_training=True).validate("cfg.yml: recompute")
    TrainOptions(to_static_training=True).validate(None)
