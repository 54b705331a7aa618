"""Shared test helpers: where the reference fixtures live, and the slow marker."""
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
REPO = Path(__file__).resolve().parents[1]


def fixture_path(*parts: str) -> Path:
    """A file under ../shared/fixtures, or skip the test when the fixtures are not beside the checkout."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference fixture {path} not found (../shared/fixtures must sit beside the checkout)")
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests that take more than a few seconds (run in CI too)")
    # Paddle's known-harmless notices (paddleseg/utils/quiet.py). Importing the package installs their
    # filters, but pytest restores the filter list after collecting each module and around each test,
    # so the test output needs them as pytest settings too; every other warning is still reported.
    import re

    from paddleseg.utils.quiet import HARMLESS_WARNINGS

    for message, module in HARMLESS_WARNINGS:
        config.addinivalue_line("filterwarnings", f"ignore:{message}:UserWarning:{re.escape(module)}\\Z")


@pytest.fixture(scope="session")
def tiny_cityscapes(tmp_path_factory):
    """A small synthetic Cityscapes tree (8 train, 4 val images of 128x64), made once per session."""
    from paddleseg.datasets.synthetic import write_synthetic_cityscapes

    return write_synthetic_cityscapes(tmp_path_factory.mktemp("tiny_cityscapes"), train=8, val=4, width=128,
                                      height=64, seed=0, workers=1, progress=False)


def write_train_config(path: Path, dataset_root: Path, **top_level) -> Path:
    """A fast ESPNetV2 (scale 0.5) config on ``dataset_root``; ``top_level`` keys replace the defaults."""
    import yaml

    cfg = {
        "batch_size": 2,
        "iters": 6,
        "train_dataset": {"type": "Cityscapes", "dataset_root": str(dataset_root), "mode": "train", "transforms": [
            {"type": "RandomPaddingCrop", "crop_size": [64, 32]},
            {"type": "RandomHorizontalFlip"},
            {"type": "Normalize"}]},
        "val_dataset": {"type": "Cityscapes", "dataset_root": str(dataset_root), "mode": "val",
                        "transforms": [{"type": "Normalize"}]},
        "model": {"type": "ESPNetV2", "scale": 0.5, "num_classes": 19, "drop_prob": 0.0},
        "optimizer": {"type": "Adam", "weight_decay": 0.0002},
        "lr_scheduler": {"type": "PolynomialDecay", "learning_rate": 0.005, "end_lr": 0.0, "power": 0.9},
        "loss": {"types": [{"type": "CrossEntropyLoss"}], "coef": [1, 1]},
    }
    cfg.update(top_level)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory):
    """Training's data-check cache (and any other user cache) goes to a temporary folder, not ~/.cache;
    subprocesses inherit it."""
    import os

    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache_home"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session", autouse=True)
def cpu_device():
    """Tests run on the CPU even on a GPU host: their tolerances (bit-exact resume, equal rank results,
    script against in-process scores) are CPU tolerances. In-process tests set the device here (the
    library leaves it to the entry point); the scripts the tests start default to ``--device auto``,
    which finds no card once CUDA_VISIBLE_DEVICES is empty (subprocesses inherit it). Only a CUDA build
    has cards to hide: on a CPU build an empty CUDA_VISIBLE_DEVICES breaks paddle.distributed.launch
    (IndexError in its device list), so it is left alone there. (Not verified on a GPU host.)"""
    import os

    import paddle

    paddle.set_device("cpu")
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    if paddle.device.is_compiled_with_cuda():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    yield
    if old is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = old
