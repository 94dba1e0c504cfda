"""The bundled demo: a small trained convnet, its procedural data, sample images, and the
seed article's parabola MLP. Everything works offline; nothing here imports widgets.

- :func:`load_demo_model` -- a fresh instance of the trained convnet (8 classes: stripe
  orientation x colour, see :data:`CLASS_NAMES`); :func:`demo_model_info` its metadata.
- :func:`load_demo_data` -- the exact train/val/test images it saw; :func:`make_grating`,
  :func:`generate_dataset` -- the procedural generator.
- :func:`sample_images` / :func:`sample_image` -- photos and gratings as uint8 RGB.
- :func:`parabola_data`, :func:`build_parabola_mlp` -- the seed article's regression.
- :func:`load_application` -- Keras application models with ImageNet weights from the Keras
  cache or a Keras download; :func:`imagenet_class_names` from the Keras cache.
"""

from __future__ import annotations

from .applications import (
    APPLICATIONS,
    application_preprocess,
    imagenet_class_names,
    load_application,
)
from .images import sample_image, sample_image_names, sample_images
from .model import build_demo_convnet
from .parabola import build_parabola_mlp, parabola_data
from .pretrained import demo_model_info, load_demo_data, load_demo_model
from .procedural import CLASS_NAMES, generate_dataset, make_grating

__all__ = [
    "APPLICATIONS",
    "CLASS_NAMES",
    "application_preprocess",
    "build_demo_convnet",
    "build_parabola_mlp",
    "demo_model_info",
    "generate_dataset",
    "imagenet_class_names",
    "load_application",
    "load_demo_data",
    "load_demo_model",
    "make_grating",
    "parabola_data",
    "sample_image",
    "sample_image_names",
    "sample_images",
]
