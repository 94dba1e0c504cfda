"""The fixed data splits the shipped demo convnet was trained and evaluated on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    """``n`` images of :func:`nbviz.demo.generate_dataset` drawn with ``seed``."""

    n: int
    seed: int


#: The demo data's train/val/test splits: size and seed of each.
SPLITS: dict[str, Split] = {
    "train": Split(n=6144, seed=1),
    "val": Split(n=1024, seed=2),
    "test": Split(n=1024, seed=3),
}
