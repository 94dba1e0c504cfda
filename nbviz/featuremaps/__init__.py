"""Feature maps (activation maps) of any image-like layer of a Keras model.

The backend of :class:`nbviz.widgets.FeatureMapExplorer`; no widget imports, usable headless.

- :mod:`~nbviz.featuremaps.activations`: :class:`FeatureMaps`, one cached extractor per layer
  (or set of layers), activations cached per (layer, image).
- :mod:`~nbviz.featuremaps.preprocess`: image standardization and the model's preprocessing
  hooks (:func:`prepare_image`); :mod:`~nbviz.featuremaps.reading`: how images are read
  (dtypes and ranges, PIL modes, paths, tensors, lists: :func:`read_images`).
- :mod:`~nbviz.featuremaps.render`: normalization, colormaps, overlays, mosaics, PNG bytes,
  matplotlib figures (:func:`show_feature_map`).
"""

from __future__ import annotations

from .activations import (
    CacheStats,
    FeatureMaps,
    check_channel,
    check_filter,
    feature_maps_for,
    image_key,
)
from .preprocess import ImagePreparer, ImageSpec, prepare_image
from .reading import read_images
from .render import (
    NORMALIZATIONS,
    colorize,
    enlarge,
    feature_map_figure,
    map_stats,
    normalize_maps,
    overlay,
    render_grid,
    render_map,
    render_view,
    show_feature_map,
    to_png,
)

__all__ = [
    "NORMALIZATIONS",
    "CacheStats",
    "FeatureMaps",
    "ImagePreparer",
    "ImageSpec",
    "check_channel",
    "check_filter",
    "colorize",
    "enlarge",
    "feature_map_figure",
    "feature_maps_for",
    "image_key",
    "map_stats",
    "normalize_maps",
    "overlay",
    "prepare_image",
    "read_images",
    "render_grid",
    "render_map",
    "render_view",
    "show_feature_map",
    "to_png",
]
