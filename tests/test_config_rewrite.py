"""paddleseg.cvlibs.config_rewrite and compute_classweight.py --write-config: the config keeps its
permission bits, a symlinked config stays a symlink with its target rewritten, and a failed write
leaves the config as it was."""
import errno
import os
import stat
import subprocess
import sys

import pytest
import yaml

from paddleseg.cvlibs.config_rewrite import write_weights_to_config
from paddleseg.errors import ConfigError

from conftest import REPO, write_train_config

CONFIG = "loss:\n  types:\n    - type: CrossEntropyLoss  # weighted\n  coef: [1]\niters: 3\n"


def weight_of(path):
    return yaml.safe_load(path.read_text())["loss"]["types"][0]["weight"]


def hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("mode", [0o644, 0o664, 0o600])
def test_write_keeps_the_config_mode(tmp_path, mode):
    cfg = tmp_path / "c.yml"
    cfg.write_text(CONFIG)
    cfg.chmod(mode)
    assert write_weights_to_config(cfg, [0.5, 2.0]) == 1
    assert weight_of(cfg) == [0.5, 2.0]
    assert stat.S_IMODE(cfg.stat().st_mode) == mode
    assert "# weighted" in cfg.read_text() and hidden(tmp_path) == []


def test_write_goes_through_a_symlink_to_its_target(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / "base.yml"
    target.write_text(CONFIG)
    target.chmod(0o644)
    link = tmp_path / "mine.yml"
    link.symlink_to("shared/base.yml")
    write_weights_to_config(link, [1.5, 3.0])
    assert link.is_symlink() and os.readlink(link) == "shared/base.yml"
    assert weight_of(target) == [1.5, 3.0] and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert hidden(tmp_path) == [] and hidden(shared) == []  # the temporary file sat beside the target


def test_a_failed_write_leaves_the_config_unchanged(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yml"
    cfg.write_text(CONFIG)
    cfg.chmod(0o644)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ConfigError, match="No space left on device.*unchanged"):
        write_weights_to_config(cfg, [0.5, 2.0])
    assert cfg.read_text() == CONFIG and stat.S_IMODE(cfg.stat().st_mode) == 0o644
    assert hidden(tmp_path) == []


def test_compute_classweight_write_config_keeps_mode_and_symlink(tmp_path, tiny_cityscapes):
    (tmp_path / "configs").mkdir()
    target = write_train_config(tmp_path / "configs" / "train.yml", tiny_cityscapes)
    target.chmod(0o644)
    before = yaml.safe_load(target.read_text())
    link = tmp_path / "link.yml"
    link.symlink_to(target)
    done = subprocess.run([sys.executable, str(REPO / "compute_classweight.py"), "--config", str(link),
                           "--write-config", "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and link.resolve() == target
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    after = yaml.safe_load(target.read_text())
    weights = after["loss"]["types"][0].pop("weight")
    assert len(weights) == 19 and all(1.0 < w < 10.5 for w in weights)
    assert after == before


def test_write_config_target_is_checked_before_counting(tmp_path):
    from paddleseg.cvlibs.config_rewrite import check_config_writable

    cfg = tmp_path / "c.yml"
    cfg.write_text(CONFIG)
    (tmp_path / "link.yml").symlink_to("c.yml")
    check_config_writable(tmp_path / "link.yml")
    with pytest.raises(ConfigError, match="not a file"):
        check_config_writable(tmp_path / "missing.yml")
