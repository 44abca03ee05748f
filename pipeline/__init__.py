"""Small-object detection pipeline: data sets, super-resolution, augmentation,
SSD variants, post-processing and evaluation.

The core library imports neither Prefect nor DVC; ``pipeline.flows`` and the
``stages/`` scripts are thin wrappers around it.
"""

__version__ = "0.1.0"
