"""One name per concept: "channel" across widgets and backends. The old names (``filter``,
``units``, ``filter_slider``, ``top_filters``, ``check_filter``, ``UnitError`` ...) still work,
both ways, and each use warns with the new name."""

from __future__ import annotations

import numpy as np
import pytest

from nbviz.errors import ChannelError
from nbviz.featuremaps import FeatureMaps, check_channel, render_view
from nbviz.widgets.feature_maps import FeatureMapExplorer, show_feature_map
from nbviz.widgets.optvis import OptVisWidget


def _samples():
    return {"noise": np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)}


def test_optvis_widget_old_names_warn_and_follow_the_channel_trait(tiny_convnet, no_thread_leak):
    with pytest.warns(DeprecationWarning, match=r"filter= is deprecated; use channel="):
        w = OptVisWidget(tiny_convnet, layer="conv2", filter=3, steps=4, size=16)
    try:
        assert w.channel == 3 and w.channel_input.value == 3
        with pytest.warns(DeprecationWarning, match=r"OptVisWidget\.filter .*use \.channel"):
            assert w.filter == 3
        with pytest.warns(DeprecationWarning, match=r"\.channel"):
            w.filter = 5  # the old name writes the new trait (and its control)
        assert w.channel == 5 and w.channel_input.value == 5
        w.channel = 6  # and the new name is what the old one reads
        with pytest.warns(DeprecationWarning):
            assert w.filter == 6
        with pytest.warns(DeprecationWarning), pytest.raises(ChannelError, match="0..15"):
            w.filter = 16  # validated like the new name
        with pytest.warns(DeprecationWarning, match=r"\.channel_input"):
            assert w.filter_input is w.channel_input
        assert w.start() and w.wait(60)
        assert w.channels == (6,)
        with pytest.warns(DeprecationWarning, match=r"OptVisWidget\.units .*use \.channels"):
            assert w.units == (6,)
        assert w.channel_input.description == "channel"
        with pytest.raises(TypeError, match="both filter= and channel="):
            OptVisWidget(tiny_convnet, filter=1, channel=2)
    finally:
        w.close()


def test_feature_map_explorer_old_names_warn_and_follow_the_channel_trait(
    tiny_convnet, no_thread_leak
):
    e = FeatureMapExplorer(tiny_convnet, samples=_samples())
    try:
        assert e.wait(60) and e.channel_slider.description == "channel"
        with pytest.warns(DeprecationWarning, match=r"FeatureMapExplorer\.filter_slider"):
            e.filter_slider.value = 2  # a user's old code moving the slider
        assert e.channel == 2
        with pytest.warns(DeprecationWarning, match=r"FeatureMapExplorer\.filter .*\.channel"):
            e.filter = 4
        assert e.channel == 4 and e.channel_slider.value == 4
        assert e.wait(60) and "channel 4 of 8" in e.status.value
        e.channel = 1
        with pytest.warns(DeprecationWarning):
            assert e.filter == 1
    finally:
        e.close()


def test_backend_functions_take_channel_and_the_deprecated_filter_keyword(tiny_convnet):
    fm = FeatureMaps(tiny_convnet)
    image = _samples()["noise"]
    new = fm.feature_map(image, "conv1", channel=2)
    with pytest.warns(DeprecationWarning, match=r"filter= is deprecated; use channel="):
        old = fm.feature_map(image, "conv1", filter=2)
    np.testing.assert_array_equal(new, old)
    acts = fm.activations(image, "conv1")[0]
    with pytest.warns(DeprecationWarning):
        np.testing.assert_array_equal(render_view(acts, filter=3), render_view(acts, channel=3))
    with pytest.warns(DeprecationWarning):
        ax = show_feature_map(image, tiny_convnet, "conv1", filter=1)
    assert ax.get_title() == "conv1 channel 1"
    ax.figure.clf()
    import nbviz.featuremaps as featuremaps

    with pytest.warns(DeprecationWarning, match="check_channel"):
        assert featuremaps.check_filter(3, 8) == check_channel(3, 8) == 3
    with pytest.raises(ChannelError, match="Channel 9 is out of range.*0..7"):
        check_channel(9, 8)


def test_unit_error_is_the_deprecated_name_of_channel_error():
    import nbviz.errors as errors

    with pytest.warns(DeprecationWarning, match="ChannelError"):
        old = errors.UnitError
    assert old is ChannelError
    with pytest.warns(DeprecationWarning), pytest.raises(errors.UnitError):
        check_channel(-1, 4)  # code catching the old name still catches the error
    with pytest.raises(AttributeError):
        errors.NoSuchError  # noqa: B018
