"""Keras application loader: ImageNet weights from the Keras cache, a Keras download where a
network exists, and a clear error naming the file where it does not. Tests never reach the
internet: the download path runs in a subprocess whose proxy is a local socket that counts
the connection attempts and closes them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from nbviz.demo import application_preprocess, load_application
from nbviz.demo.applications import (
    application_module,
    find_imagenet_weights,
    imagenet_weights_filename,
)
from nbviz.errors import ModelError, WeightsUnavailableError

SMALL = (64, 64, 3)


@pytest.fixture
def empty_keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def test_random_weights_build(keras):
    model = load_application("VGG16", weights=None, input_shape=SMALL, include_top=False)
    assert model.input_shape == (None, *SMALL)
    assert "block1_conv1" in [layer.name for layer in model.layers]


def test_imagenet_missing_names_the_file(empty_keras_home):
    with pytest.raises(WeightsUnavailableError) as info:
        load_application("VGG16", input_shape=SMALL, include_top=False, download=False)
    msg = str(info.value)
    assert "download=False" in msg
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in msg
    assert str(empty_keras_home / "models") in msg
    assert "weights=None" in msg and "keras.applications.VGG16(weights='imagenet'" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ModelError) as info:
        load_application("VGG61", weights=None)
    msg = str(info.value)
    assert "VGG16" in msg and "ResNet50V2" in msg and "MobileNetV2" in msg


def test_weights_file_names_match_keras():
    assert imagenet_weights_filename("VGG19") == "vgg19_weights_tf_dim_ordering_tf_kernels.h5"
    assert (
        imagenet_weights_filename("resnet50v2", include_top=False)
        == "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    assert (
        imagenet_weights_filename("MobileNetV2")
        == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
    )
    assert (
        imagenet_weights_filename("MobileNetV2", False, (128, 128, 3), alpha=0.5)
        == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_128_no_top.h5"
    )
    # Keras falls back to the 224 weights for sizes it has no weights for.
    assert imagenet_weights_filename("MobileNetV2", False, (64, 64, 3)).endswith(
        "_1.0_224_no_top.h5"
    )


def test_cached_weights_are_loaded(keras, empty_keras_home):
    keras.utils.set_random_seed(3)
    source = load_application("VGG16", weights=None, input_shape=SMALL, include_top=False)
    filename = imagenet_weights_filename("VGG16", include_top=False)
    # Keras' ImageNet files are legacy-format .h5, which model.save writes for a ".h5" name.
    source.save(empty_keras_home / "models" / filename)
    assert (
        find_imagenet_weights("VGG16", include_top=False) == empty_keras_home / "models" / filename
    )
    keras.utils.set_random_seed(4)
    loaded = load_application("VGG16", input_shape=SMALL, include_top=False)
    for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_weights_path(keras, tmp_path):
    keras.utils.set_random_seed(5)
    source = load_application("VGG16", weights=None, input_shape=SMALL, include_top=False)
    path = tmp_path / "mine.weights.h5"
    source.save_weights(path)
    loaded = load_application("VGG16", weights=path, input_shape=SMALL, include_top=False)
    for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        load_application("VGG16", weights=tmp_path / "nope.h5", include_top=False)


class _RefusingProxy:
    """A proxy on 127.0.0.1 that counts connections and closes each at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self._thread.join(timeout=10)


def _load_offline(tmp_path, proxy: _RefusingProxy, download: bool) -> str:
    """Run load_application in a fresh process (Keras reads KERAS_HOME once, at import)."""
    url = f"http://127.0.0.1:{proxy.port}"
    env = {
        **os.environ,
        "KERAS_HOME": str(tmp_path / "keras_home"),
        "NO_PROXY": "",
        "no_proxy": "",
        **{k: url for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
    }
    code = textwrap.dedent(f"""
        from nbviz.demo import load_application
        from nbviz.errors import WeightsUnavailableError
        try:
            load_application("VGG16", input_shape=(64, 64, 3), include_top=False,
                             download={download})
        except WeightsUnavailableError as exc:
            print("ERROR:", exc)
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_missing_weights_are_downloaded_by_keras_and_a_failed_download_names_the_file(tmp_path):
    proxy = _RefusingProxy()
    try:
        out = _load_offline(tmp_path, proxy, download=True)
        assert proxy.connections >= 1  # Keras tried to download
        assert "ERROR:" in out and "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in out
        assert str(tmp_path / "keras_home" / "models") in out
        assert "could not download" in out
        before = proxy.connections
        out = _load_offline(tmp_path, proxy, download=False)
        assert proxy.connections == before  # cache only: no network at all
        assert "download=False" in out
    finally:
        proxy.close()


def test_imagenet_shape_checks(empty_keras_home):
    with pytest.raises(ModelError, match="include_top=False"):
        load_application("VGG16", input_shape=SMALL, include_top=True)
    with pytest.raises(ModelError, match="1000"):
        load_application("VGG16", include_top=True, classes=10)


def test_preprocess_matches_keras(keras):
    assert application_preprocess("VGG16") is keras.applications.vgg16.preprocess_input
    assert application_preprocess("ResNet50V2") is keras.applications.resnet_v2.preprocess_input
    x = np.full((1, 4, 4, 3), 255.0, np.float32)
    assert np.allclose(application_preprocess("MobileNetV2")(x), 1.0)
    assert application_module("resnet50v2") is keras.applications.resnet_v2


def test_imagenet_class_names_come_from_the_keras_cache(empty_keras_home):
    import json

    from nbviz.demo.applications import imagenet_class_names, missing_class_names_reason

    assert imagenet_class_names() is None
    assert "imagenet_class_index.json" in missing_class_names_reason()
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    (empty_keras_home / "models" / "imagenet_class_index.json").write_text(json.dumps(index))
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "class_0" and names[999] == "class_999"
