"""Typed configs: from_plain is the strict inverse of to_plain, and dotted keys name every field."""

import dataclasses
import re

import pytest

from simclr_core.config import (
    AugmentConfig, ConfigError, DataConfig, ModelConfig, OpSpec, ProbeConfig, RunConfig, TrainConfig,
)


def configs() -> list[RunConfig]:
    """The defaults, every field changed from its default, and the nullable fields set."""
    changed = RunConfig(
        data=DataConfig(dataset="synthetic", root="/data", download=True, cache_dir="/cache", train_subset=100,
                        train_subset_per_class=True, test_subset=50, synthetic_per_class=8, synthetic_classes=3,
                        synthetic_size=16, synthetic_seed=7),
        augment=AugmentConfig(protocol="asymmetric", pipeline=[OpSpec("crop", {"scale": [0.2, 1.0]}), OpSpec("color")],
                              color_strength=1.0, base_crop=True, compile="off"),
        model=ModelConfig(encoder="small_cnn", head="linear", projection_dim=64, hidden_dim=256, width=16),
        train=TrainConfig(epochs=1, batch_size=32, optimizer="lars", lr=1.5, momentum=0.8, weight_decay=0.0,
                          warmup_epochs=0.5, temperature=0.1, n_views=4, seed=3, device="cpu", precision="fp32",
                          channels_last="off", compile=True, num_threads=2),
        probe=ProbeConfig(enabled=False, max_iter=10, weight_decay=0.0, probe_z=False, knn_every=0, knn_k=5,
                          knn_temperature=0.5, knn_train_rows=100, knn_test_rows=10, batch_size=64),
    )
    no_ops = RunConfig(augment=AugmentConfig(pipeline=[]))
    return [RunConfig(), changed, no_ops]


@pytest.mark.parametrize("config", configs(), ids=["defaults", "every_field_changed", "no_ops"])
def test_from_plain_inverts_to_plain(config):
    assert RunConfig.from_plain(config.to_plain()) == config


def test_every_field_differs_from_its_default_in_the_changed_config():
    # Otherwise the round trip above would not show that each field is read back.
    changed = configs()[1].to_plain()
    defaults = RunConfig().to_plain()
    same = [f"{s}.{k}" for s in defaults for k in defaults[s] if defaults[s][k] == changed[s][k]]
    assert same == []


def test_left_out_sections_and_keys_keep_their_defaults():
    config = RunConfig.from_plain({"train": {"epochs": 3}})
    assert config.train.epochs == 3
    assert dataclasses.replace(config.train, epochs=10) == TrainConfig()
    assert config.data == DataConfig() and RunConfig.from_plain({}) == RunConfig()


def test_an_int_is_read_as_a_float_where_a_float_is_expected():
    config = RunConfig.from_plain({"train": {"lr": 1}})
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)


@pytest.mark.parametrize("plain, key, reason", [
    ([1], "", "expected a mapping of config sections, got a list"),
    ({"trian": {}}, "trian", "unknown key; allowed: data, augment, model, train, probe"),
    ({"train": [1]}, "train", "expected a mapping of train settings, got a list"),
    ({"train": {"tempertaure": 0.5}}, "train.tempertaure", "unknown key; allowed: epochs, batch_size"),
    ({"train": {"epochs": "ten"}}, "train.epochs", "'ten' is not allowed; expected an integer"),
    ({"train": {"epochs": 2.0}}, "train.epochs", "2.0 is not allowed; expected an integer"),
    ({"train": {"lr": "0.1"}}, "train.lr", "'0.1' is not allowed; expected a number"),
    ({"train": {"lr": float("nan")}}, "train.lr", "expected a number"),
    ({"train": {"lr": True}}, "train.lr", "True is not allowed; expected a number"),
    ({"probe": {"enabled": 1}}, "probe.enabled", "1 is not allowed; expected true or false"),
    ({"train": {"epochs": None}}, "train.epochs", "None is not allowed; expected an integer"),
    ({"data": {"train_subset": "all"}}, "data.train_subset", "expected an integer or null"),
    ({"model": {"head": 1}}, "model.head", "expected a string"),
    ({"augment": {"pipeline": "crop"}}, "augment.pipeline", "expected a list of op names"),
    ({"augment": {"pipeline": ["crop", {"scale": 1}]}}, "augment.pipeline[1]", "expected an op name or a mapping"),
])
def test_from_plain_errors_name_the_dotted_key_and_what_is_allowed(plain, key, reason):
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_plain(plain)
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert str(caught.value) == (f"{key}: {caught.value.reason}" if key else caught.value.reason)


def test_nullable_fields_take_null():
    assert RunConfig.from_plain({"data": {"root": None, "train_subset": None}}).data.train_subset is None


def test_pipeline_entries_become_op_specs_and_op_names_are_left_to_the_augmentations():
    pipeline = RunConfig.coerce("augment.pipeline", ["crop", {"op": "color", "strength": 0.25}, "no_such_op"])
    assert pipeline == [OpSpec("crop"), OpSpec("color", {"strength": 0.25}), OpSpec("no_such_op")]
    assert [spec.to_plain() for spec in pipeline] == ["crop", {"op": "color", "strength": 0.25}, "no_such_op"]
    assert OpSpec.from_plain({"op": "crop", "scale": [0.5, 1.0]}) == OpSpec("crop", {"scale": [0.5, 1.0]})


def test_field_keys_name_every_field_in_declaration_order():
    keys = RunConfig.field_keys()
    assert keys[0] == "data.dataset" and keys[-1] == "probe.batch_size"
    assert len(keys) == len(set(keys)) == sum(len(s) for s in RunConfig().to_plain().values())
    assert "augment.pipeline" in keys and "train.seed" in keys


@pytest.mark.parametrize("key, reason", [
    ("epochs", "expected a dotted key section.field, one of the sections data, augment, model, train, probe"),
    ("train.lr.x", "expected a dotted key section.field"),
    (3, "expected a dotted key section.field"),
    ("trian.epochs", "unknown section 'trian'; allowed: data, augment, model, train, probe"),
    ("train.tempertaure", "unknown key; train takes epochs, batch_size, optimizer"),
])
def test_check_key_lists_what_exists(key, reason):
    with pytest.raises(ConfigError) as caught:
        RunConfig.check_key(key)
    assert reason in caught.value.reason and caught.value.key == str(key)


def test_get_and_set_by_dotted_key():
    config = RunConfig()
    config.set("train.temperature", 0.2)
    assert config.train.temperature == 0.2 == config.get("train.temperature")
    assert config.get("augment.pipeline") == AugmentConfig().pipeline
    with pytest.raises(ConfigError, match="train takes"):
        config.set("train.tempertaure", 0.2)


def test_field_types_and_descriptions():
    assert RunConfig.field_type("train.lr") is float
    assert RunConfig.field_type("data.train_subset") is int  # null left out
    assert RunConfig.field_type("augment.pipeline") == list[OpSpec]
    assert RunConfig.describe_field("data.train_subset") == "an integer or null"
    assert RunConfig.describe_field("probe.enabled") == "true or false"
    assert RunConfig.describe_field("data.root") == "a string or null"
    assert RunConfig.describe_field("augment.pipeline") == "a list of op names or {op: name, ...params} mappings"


def test_a_config_error_without_a_separate_key_keeps_its_message():
    error = ConfigError("train.device: 'tpu' is not allowed")
    assert error.key is None and error.reason == str(error) == "train.device: 'tpu' is not allowed"


@pytest.mark.parametrize("section, values, key, allowed", [
    ("model", {"width": 0}, "model.width", ">= 1"),
    ("model", {"hidden_dim": 0}, "model.hidden_dim", ">= 1 or null"),
    ("train", {"num_threads": 0}, "train.num_threads", ">= 1 or null"),
    ("train", {"num_threads": -2}, "train.num_threads", ">= 1 or null"),
    ("probe", {"max_iter": 0}, "probe.max_iter", ">= 1"),
    ("probe", {"batch_size": 0}, "probe.batch_size", ">= 1"),
    ("probe", {"knn_train_rows": 0}, "probe.knn_train_rows", ">= 1"),
    ("data", {"synthetic_classes": 1}, "data.synthetic_classes", ">= 2"),
    ("train", {"seed": 2**63}, "train.seed", "from 0 to 9223372036854775807"),
    ("train", {"seed": -1}, "train.seed", "from 0 to"),
])
def test_values_no_run_can_use_are_refused_before_any_run(section, values, key, allowed):
    config = RunConfig()
    for name, value in values.items():
        setattr(getattr(config, section), name, value)
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: .*{re.escape(allowed)}"):
        config.validate()


def test_a_batch_larger_than_the_known_training_set_is_refused():
    config = RunConfig()
    config.data.train_subset, config.train.batch_size = 100, 256
    with pytest.raises(ConfigError, match=r"^train.batch_size: 256 is larger than the 100 training images"):
        config.validate()
    config.data.dataset, config.data.train_subset = "synthetic", None  # 4 classes x 100 images
    config.validate()
    config.data.synthetic_per_class = 50
    with pytest.raises(ConfigError, match="larger than the 200 training images"):
        config.validate()
    config.data.dataset = "cifar10"  # its size is known only once loaded: the trainer checks it there
    config.validate()
