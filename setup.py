from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
setup(
    name="jittor-pranet",
    version="0.1.0",
    description="PraNet-V1/V2 (DSRA) polyp segmentation in Jittor: faithful to PyTorch, trainable, fast",
    long_description=(here / "README.md").read_text(encoding="utf-8") if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.8",
    packages=find_packages(include=["jittor_pranet", "jittor_pranet.*"]),
    package_data={"jittor_pranet": ["configs/*.yaml", "kernels/csrc/*.h", "kernels/csrc/*.cc"]},  # C++ of the CPU kernels
    install_requires=[
        "jittor==1.3.11.0",
        "numpy",
        "opencv-python-headless",
        "pillow",
        "scipy",
        "tqdm",
        "pyyaml",
        # the readers of the medical formats: h5 volumes/slices (Synapse, ACDC) and raw NIfTI releases
        "h5py",
        "nibabel",
    ],
    extras_require={
        # PyTorch only for parity checks and benchmarks; 2.13.0 is the CPU build served locally here.
        "torch": ["torch==2.13.0"],
        # ONNX export through the PyTorch twin of each model (jittor-pranet export), checked with onnxruntime
        "export": ["torch==2.13.0", "onnx", "onnxruntime"],
        "test": ["pytest", "pysodmetrics", "medpy", "monai", "torch==2.13.0", "onnx", "onnxruntime", "ruff"],
    },
    entry_points={"console_scripts": ["jittor-pranet=jittor_pranet.cli:entry"]},
)
