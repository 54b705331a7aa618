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
