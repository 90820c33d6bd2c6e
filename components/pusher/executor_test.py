"""The atomic push: a complete version folder, or none at all."""
import os

import pytest
from tfx.utils import io_utils

from components.pusher import executor


def fake_saved_model(path):
    os.makedirs(os.path.join(path, "variables"))
    for name in ("saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001",
                 "fingerprint.pb"):
        with open(os.path.join(path, name), "w") as f:
            f.write(name)


def complete(version_dir):
    return sorted(os.path.relpath(os.path.join(root, f), version_dir) for root, _, files in os.walk(version_dir)
                  for f in files)


def test_push_lands_a_complete_version(tmp_path):
    fake_saved_model(str(tmp_path / "model"))
    path = executor.push_atomically(str(tmp_path / "model"), str(tmp_path / "serving"), "100")
    assert path == str(tmp_path / "serving" / "100") and os.listdir(tmp_path / "serving") == ["100"]
    assert complete(path) == complete(str(tmp_path / "model"))


def test_an_interrupted_push_leaves_only_complete_versions(tmp_path, monkeypatch):
    fake_saved_model(str(tmp_path / "model"))
    executor.push_atomically(str(tmp_path / "model"), str(tmp_path / "serving"), "100")
    copied = []
    real_copy = io_utils.fileio.copy

    def dies_after_two_files(src, dst, overwrite=False):
        if len(copied) == 2:
            raise KeyboardInterrupt("killed mid-copy")
        copied.append(dst)
        real_copy(src, dst, overwrite)

    monkeypatch.setattr(io_utils.fileio, "copy", dies_after_two_files)
    with pytest.raises(KeyboardInterrupt):
        executor.push_atomically(str(tmp_path / "model"), str(tmp_path / "serving"), "200")
    assert copied and all(".200.partial" in c for c in copied)  # the copy had begun, under the hidden name
    # what TF Serving sees: numeric folders only, each complete; the partial copy is gone
    assert os.listdir(tmp_path / "serving") == ["100"]
    assert complete(str(tmp_path / "serving" / "100")) == complete(str(tmp_path / "model"))
