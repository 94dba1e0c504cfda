"""Helpers importable by tests (``from helpers import ...``)."""

from conftest import assert_weights_identical, weights_snapshot  # noqa: F401
