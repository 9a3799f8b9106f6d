"""Installs leed_tf. Exact pins for reproducible runs are in requirements.txt."""

from setuptools import find_packages, setup

DLIB = ["dlib-bin>=19.24", "face-recognition-models>=0.3"]
DEMO = ["gradio>=5,<7"]
PHOTOS = ["scikit-image>=0.22"]

setup(
    name="leed_tf",
    version="0.1.0",
    description="LEED: label-free facial expression editing via disentanglement (TensorFlow 2 / Keras 3)",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["leed_tf", "leed_tf.*"]),
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "keras>=3.3,<4",
        "numpy>=1.26",
        "pillow>=10",
        "absl-py>=1.0",
        "tensorboard>=2.16",
        "h5py>=3.10",
        "scipy>=1.10",  # linear_sum_assignment, for the matched-pair term (training/pairs.py)
    ],
    extras_require={
        "gpu": ["tensorflow[and-cuda]>=2.16,<2.22"],
        # The suite runs on 2 workers (pytest.ini): the CI machine's 2 cores. It
        # tests alignment (dlib), the demo (gradio) in Chromium (selenium; the
        # browser and its driver are Debian's, installed by .ci/run) on
        # scikit-image's astronaut photo.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", *DLIB, *DEMO, *PHOTOS,
                 "selenium>=4.10"],
        "dev": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", *DLIB, *DEMO, *PHOTOS,
                "selenium>=4.10", "ruff>=0.5"],
        "face": ["opencv-python-headless<5"],
        # dlib's face embedding for identity similarity in scripts/evaluate.py,
        # and its face detector and landmarks for aligning photos.
        "eval": DLIB,
        # scripts/demo.py, aligning faces when dlib is there.
        "demo": [*DEMO, *DLIB],
        # Real photos shipped by a package (skimage.data.astronaut), for trying
        # alignment and paste-back (docs/usage.md).
        "photos": PHOTOS,
    },
)
