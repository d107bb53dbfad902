"""simclr_core.checkpoint: what train() writes, and what a harness may do with it."""

import pytest
import torch

from simclr_core import checkpoint
from simclr_core.config import DataConfig, ModelConfig, ProbeConfig, RunConfig, TrainConfig
from simclr_core.model import build_encoder, build_head
from simclr_core.trainer import train


def tiny_config(**train_values) -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset="synthetic", synthetic_per_class=20, synthetic_classes=2, synthetic_size=16),
        model=ModelConfig(encoder="small_cnn", width=4, head="linear", projection_dim=8),
        train=TrainConfig(**{"epochs": 1, "batch_size": 16, "device": "cpu", **train_values}),
        probe=ProbeConfig(enabled=False, knn_every=0),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    config = tiny_config()
    train(config, checkpoint_dir=folder)
    return folder, config


def test_load_reads_back_what_train_wrote(trained):
    folder, config = trained
    saved = checkpoint.load(folder)
    assert saved.epoch == 1 and saved.config == config.to_plain() and len(saved.history) == 1
    assert any(key.startswith("encoder.") for key in saved.model)
    assert checkpoint.load(folder / "nowhere") is None


def test_a_checkpoint_of_another_configuration_or_a_torn_one_is_dropped(trained, tmp_path):
    folder, config = trained
    assert not checkpoint.drop_if_foreign(folder, config)  # its own: kept
    assert checkpoint.path_in(folder).exists()
    copy = tmp_path / "copy"
    copy.mkdir()
    checkpoint.path_in(copy).write_bytes(checkpoint.path_in(folder).read_bytes())
    assert checkpoint.drop_if_foreign(copy, tiny_config(temperature=0.2))
    assert not checkpoint.path_in(copy).exists()
    checkpoint.path_in(copy).write_bytes(b"torn")
    assert checkpoint.drop_if_foreign(copy, config)
    assert not checkpoint.drop_if_foreign(copy, config)  # nothing left to drop
    checkpoint.remove(copy)  # no error when absent


def test_a_checkpoint_from_an_engine_with_other_random_streams_is_refused_and_dropped(trained, tmp_path):
    """Before one stream per op, checkpoints carried a whole-pipeline "views" stream: resuming one would
    mix two ways of drawing views in one run, so it starts over instead."""
    folder, config = trained
    state = torch.load(checkpoint.path_in(folder), weights_only=False)
    state["generators"] = {**state["generators"], "views": state["generators"]["shuffle"]}
    old = tmp_path / "old"
    old.mkdir()
    torch.save(state, checkpoint.path_in(old))
    with pytest.raises(Exception, match="not written by this version"):
        checkpoint.load(old)
    assert checkpoint.drop_if_foreign(old, config) and not checkpoint.path_in(old).exists()


def test_exported_weights_load_into_the_encoder_and_head_of_their_config(trained, tmp_path):
    folder, config = trained
    path = checkpoint.export_weights(folder, tmp_path / "encoder.pt")
    weights = torch.load(path)
    assert weights["config"] == config.to_plain()
    encoder, feature_dim = build_encoder(config.model)
    encoder.load_state_dict(weights["encoder"])
    build_head(config.model, feature_dim).load_state_dict(weights["head"])
    with pytest.raises(FileNotFoundError):
        checkpoint.export_weights(tmp_path / "empty")


def test_a_full_disk_names_the_checkpoint_file_and_keeps_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    """Given a path, torch.save reports a full disk as "unexpected pos 576 vs 534" and leaves the partial
    file; through a Python file it is the OSError, here named with its file, and the partial file goes."""
    folder, _ = trained
    copy = tmp_path / "run"
    copy.mkdir()
    checkpoint.path_in(copy).write_bytes(checkpoint.path_in(folder).read_bytes())
    previous = checkpoint.load(copy)

    def full_disk(state, file):
        file.write(b"partial")
        raise OSError(28, "No space left on device")  # as a write() to a full disk raises it: no file named

    with monkeypatch.context() as patch, pytest.raises(OSError) as caught:
        patch.setattr(checkpoint.torch, "save", full_disk)
        checkpoint.save(copy, previous)
    tmp = checkpoint.path_in(copy).with_suffix(".tmp")
    assert caught.value.errno == 28 and caught.value.filename == str(tmp)
    assert not tmp.exists()
    assert checkpoint.load(copy).epoch == previous.epoch == 1
