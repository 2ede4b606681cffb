"""The configuration file's watch: a change of contents is seen once, however it was made."""

from __future__ import annotations

import os
from pathlib import Path

from edgeproxy.config_watch import ConfigWatch
from tests.support.configmap import ConfigMapVolume


def test_a_rewritten_file_is_one_change(tmp_path: Path) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text("a: 1\n")
    watch = ConfigWatch(path)
    assert not watch.changed()
    path.write_text("a: 2\n")  # same size, possibly the same modification time
    assert watch.changed()
    assert not watch.changed()


def test_a_file_written_again_with_the_same_contents_is_no_change(tmp_path: Path) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text("a: 1\n")
    watch = ConfigWatch(path)
    path.write_text("a: 1\n")
    os.utime(path, (1, 1))
    assert not watch.changed()


def test_a_kubernetes_data_symlink_swap_is_one_change(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "config")
    volume.update({"edgeproxy.yaml": "a: 1\n", "other.yaml": "b: 1\n"})
    path = volume.path("edgeproxy.yaml")
    watch = ConfigWatch(path)
    volume.update({"edgeproxy.yaml": "a: 2\n", "other.yaml": "b: 1\n"})
    assert path.is_symlink(), "the proxy's path itself was never written"
    assert watch.changed()
    assert not watch.changed()
    volume.update({"edgeproxy.yaml": "a: 2\n", "other.yaml": "b: 2\n"})
    assert not watch.changed(), "another key of the ConfigMap changed, not this file"


def test_a_file_that_disappears_is_one_change_and_its_return_another(tmp_path: Path) -> None:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text("a: 1\n")
    watch = ConfigWatch(path)
    path.unlink()
    assert watch.changed()
    assert not watch.changed()
    path.write_text("a: 1\n")
    assert watch.changed()
