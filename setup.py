"""Installs the `paddleseg` package (ESPNetV2 on Cityscapes). Not PyPI's paddleseg: same import name.

The metadata lives in pyproject.toml; this file is kept for tools and users that call setup.py."""
from setuptools import setup

setup()
