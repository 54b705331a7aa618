"""Helpers shared by the package: metrics, Cityscapes labels, visualisation, devices, the CLI."""
