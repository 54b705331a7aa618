"""Installs the `paddleseg` package (ESPNetV2 on Cityscapes). Not PyPI's paddleseg: same import name."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
REQUIREMENTS = [
    line.strip() for line in (HERE / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="paddleseg-espnetv2",
    version="0.1.0",
    description="ESPNetV2 semantic segmentation on Cityscapes with PaddlePaddle 3",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["paddleseg", "paddleseg.*"]),
    python_requires=">=3.9",
    install_requires=REQUIREMENTS,
    extras_require={
        # the CPU build of PaddlePaddle; GPU users install paddlepaddle-gpu instead (README)
        "cpu": ["paddlepaddle==3.3.1"],
        "test": ["pytest==9.2.0", "pytest-timeout==2.4.0"],
        # ONNX Runtime on the GPU (tools/infer.py --backend onnxruntime --device gpu). onnxruntime-gpu
        # provides the same `onnxruntime` module as the CPU package in install_requires: the two cannot
        # share an environment, so GPU users then remove both and reinstall this one (README, "GPU").
        # 1.32.0, the CPU pin, is not published as onnxruntime-gpu; 1.31.1 is its newest (pip index versions).
        "gpu": ["onnxruntime-gpu==1.31.1"],
    },
)
