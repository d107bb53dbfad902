import math
import platform

import pytest
import torch

import simclr_core.trainer as trainer_module
from simclr_core import cpu_isa
from simclr_core.config import ConfigError, OpSpec, DataConfig, ModelConfig, ProbeConfig, RunConfig, TrainConfig
from simclr_core.data import load_dataset
from simclr_core.optim import LARS, build_optimizer, learning_rate
from simclr_core.trainer import NonFiniteLossError, numeric_settings, recorded_numerics, train


def tiny_config(**train_overrides) -> RunConfig:
    train_values = dict(epochs=2, batch_size=32, lr=0.5, warmup_epochs=0.5, seed=0, device="cpu")
    train_values.update(train_overrides)
    return RunConfig(
        data=DataConfig(dataset="synthetic", synthetic_per_class=40, synthetic_classes=4, synthetic_size=16),
        model=ModelConfig(encoder="small_cnn", width=8),
        train=TrainConfig(**train_values),
        probe=ProbeConfig(max_iter=50, knn_k=20, knn_every=1),
    )


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    kwargs = dict(peak_lr=1.0, warmup_steps=10, total_steps=110)
    assert learning_rate(0, **kwargs) == pytest.approx(0.1)
    assert learning_rate(4, **kwargs) == pytest.approx(0.5)
    assert learning_rate(10, **kwargs) == pytest.approx(1.0)
    assert learning_rate(60, **kwargs) == pytest.approx(0.5)
    assert learning_rate(110, **kwargs) == pytest.approx(0.0, abs=1e-12)
    values = [learning_rate(s, **kwargs) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert learning_rate(0, peak_lr=0.3, warmup_steps=0, total_steps=5) == pytest.approx(0.3)


def test_lars_step_matches_literal_formula():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(4, 3))
    bias = torch.nn.Parameter(torch.randn(4))
    weight.grad, bias.grad = torch.randn(4, 3), torch.randn(4)
    w0, b0, gw, gb = weight.detach().clone(), bias.detach().clone(), weight.grad.clone(), bias.grad.clone()
    optimizer = LARS([{"params": [weight]}, {"params": [bias], "exclude": True, "weight_decay": 0.0}],
                     lr=0.1, momentum=0.9, weight_decay=0.01, trust_coefficient=0.001)
    optimizer.step()
    update = gw + 0.01 * w0
    trust = 0.001 * w0.norm() / update.norm()
    assert torch.allclose(weight.detach(), w0 - 0.1 * trust * update, atol=1e-7)
    assert torch.allclose(bias.detach(), b0 - 0.1 * gb, atol=1e-7)


def test_weight_decay_skips_biases_and_batchnorm():
    config = tiny_config(optimizer="sgd", weight_decay=0.1)
    model = trainer_module.SimCLRModel(config.model)
    decayed, plain = build_optimizer(model, config).param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"])
    assert len(plain["params"]) > 0 and all(p.ndim == 1 for p in plain["params"])
    # Linear scaling: lr 0.5 at batch 256 becomes 0.0625 at batch 32.
    assert decayed["lr"] == pytest.approx(0.5 * 32 / 256)


def test_training_reports_every_epoch_and_returns_a_full_result(cpp_compiler):
    seen = []
    result = train(tiny_config(), callback=seen.append)
    assert [m.epoch for m in seen] == [1, 2]
    steps_per_epoch = 160 // 32
    assert [m.step for m in seen] == [steps_per_epoch, 2 * steps_per_epoch]
    for metrics in seen:
        assert math.isfinite(metrics.loss) and metrics.loss > 0
        assert 0.0 <= metrics.contrastive_acc <= 1.0
        assert 0.0 <= metrics.knn_acc <= 1.0
        assert metrics.images_per_s > 0 and metrics.seconds > 0
    assert seen[-1].lr == pytest.approx(learning_rate(9, peak_lr=0.0625, warmup_steps=2, total_steps=10))
    assert 0.0 <= result.probe_h <= 1.0 and 0.0 <= result.probe_z <= 1.0
    assert result.history == seen
    # The device with its instruction-set family, and what `auto` resolved to on it (tiny_config's precision).
    dtype, _ = numeric_settings(tiny_config().train, torch.device("cpu"))
    assert result.device == (f"cpu ({platform.processor() or platform.machine()}, {cpu_isa.isa_family()}, "
                             f"{torch.get_num_threads()} threads), {'bf16 autocast' if dtype else 'fp32'}")
    assert recorded_numerics(result.device) == ('bf16 autocast' if dtype else 'fp32')  # read back as recorded
    assert recorded_numerics("cpu (x86_64, 1 threads)") is None  # a record from before numerics were said
    assert result.versions["torch"] == torch.__version__
    assert result.metrics["probe_h"] == result.probe_h
    assert result.train_images == 160 and result.steps == 10
    # The phases account for the wall time without overlap: training is the epochs' own seconds.
    phases = result.phase_seconds
    assert set(phases) == {"setup", "train", "knn", "probe"} and all(v > 0 for v in phases.values())
    assert phases["train"] == pytest.approx(sum(m.seconds for m in seen))
    assert sum(phases.values()) <= result.wall_time_s
    # The default pipeline's colour ops ran as the compiled kernel (augment.compile: auto on CPU),
    # or eagerly, saying why, where there is no C++ compiler for torch.compile.
    if cpp_compiler:
        assert result.colour_ops == "compiled"
    else:
        assert result.colour_ops.startswith("eager (compiling failed")


def test_result_records_eager_colour_ops_when_compile_is_off():
    config = tiny_config(epochs=1)
    config.augment.compile = "off"
    assert train(config).colour_ops == "eager"


def test_more_than_two_views():
    seen = []
    train(tiny_config(n_views=3, epochs=1), callback=seen.append)
    assert math.isfinite(seen[0].loss)


def test_resume_from_checkpoint_gives_the_same_result(tmp_path):
    config = tiny_config(epochs=3)
    dataset = load_dataset(config.data)
    straight = train(config, checkpoint_dir=tmp_path / "straight", dataset=dataset)

    class Interrupt(Exception):
        pass

    def stop_after_first_epoch(metrics):
        if metrics.epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(config, checkpoint_dir=tmp_path / "resumed", callback=stop_after_first_epoch, dataset=dataset)
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)["epoch"] == 1
    resumed = train(config, checkpoint_dir=tmp_path / "resumed", dataset=dataset)

    assert [m.loss for m in resumed.history] == [m.loss for m in straight.history]
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert resumed.probe_h == straight.probe_h


def test_checkpoint_of_another_config_is_refused(tmp_path):
    config = tiny_config(epochs=1)
    train(config, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="different configuration"):
        train(tiny_config(epochs=1, temperature=0.2), checkpoint_dir=tmp_path)


def test_non_finite_loss_names_epoch_and_step(monkeypatch):
    real_loss = trainer_module.nt_xent_multi
    calls = {"n": 0}

    def loss_that_explodes(views, temperature):
        calls["n"] += 1
        value = real_loss(views, temperature)
        return value * float("nan") if calls["n"] == 7 else value

    monkeypatch.setattr(trainer_module, "nt_xent_multi", loss_that_explodes)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 6") as error:
        train(tiny_config(epochs=2))
    assert (error.value.epoch, error.value.step) == (2, 6)


@pytest.mark.parametrize(
    "override,key",
    [(dict(temperature=0.0), "train.temperature"), (dict(batch_size=1), "train.batch_size"),
     (dict(batch_size=4096), "train.batch_size"), (dict(optimizer="rmsprop"), "train.optimizer")],
)
def test_bad_values_fail_before_training_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        train(tiny_config(**override))


def test_training_learns_instance_discrimination():
    # Ten epochs of 600 synthetic images with crop and flip: the positive must become easier to
    # find among the 2N-1 other views, and the loss must fall below its chance value log(2N-1).
    # (With the colour distortion the synthetic instances differ mainly in colour, and a width-8
    # net learns little at this budget; CIFAR-10 runs show learned features beating random ones.)
    config = tiny_config(epochs=10, lr=1.0, batch_size=64)
    config.augment.pipeline = [OpSpec("crop", {"scale": (0.5, 1.0)}), OpSpec("hflip")]
    config.data.synthetic_per_class = 150
    config.data.synthetic_size = 32
    config.probe.knn_every = 0
    result = train(config)
    first, last = result.history[0], result.history[-1]
    assert first.loss < math.log(2 * 64 - 1)
    assert last.loss < first.loss - 0.4
    assert last.contrastive_acc > first.contrastive_acc + 0.05


def test_training_step_is_the_literal_simclr_step():
    """build() + training_step() against the step written out: forward both views, NT-Xent,
    backward, optimiser step, from the same initial weights."""
    from simclr_core.loss import nt_xent
    from simclr_core.model import SimCLRModel
    from simclr_core.trainer import build, training_step

    config = tiny_config(precision="fp32", channels_last="off", optimizer="sgd", lr=0.1)
    setup = build(config)
    torch.manual_seed(config.train.seed)
    reference = SimCLRModel(config.model)
    reference_optimizer = build_optimizer(reference, config)
    views = [torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(v)) for v in range(2)]

    loss, z = training_step(setup, views, temperature=0.5)
    _, z_both = reference(torch.cat(views))  # one batch: BatchNorm statistics over both views, as trained
    z1, z2 = z_both.chunk(2)
    expected = nt_xent(z1, z2, 0.5)
    reference_optimizer.zero_grad()
    expected.backward()
    reference_optimizer.step()

    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert z.shape == (2, 8, config.model.projection_dim)
    for (name, a), b in zip(setup.model.state_dict().items(), reference.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_training_step_refuses_a_non_finite_loss_before_changing_weights():
    from simclr_core.trainer import build, training_step

    setup = build(tiny_config(precision="fp32"))
    before = {k: v.detach().clone() for k, v in setup.model.named_parameters()}
    views = [torch.full((4, 3, 16, 16), float("nan"))] * 2
    with pytest.raises(NonFiniteLossError, match="epoch 3, step 7"):
        training_step(setup, views, temperature=0.5, epoch=3, step=7)
    # Weights untouched (BatchNorm's running statistics did see the forward pass, as in any step).
    assert all(torch.equal(before[k], v) for k, v in setup.model.named_parameters())


# Paired seeds (common random numbers): a seed means the same randomness in every cell of a study.

def _record_batches(monkeypatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every step's source images and its last view (the base-cropped image under the asymmetric
    protocol), as make_views sees and returns them."""
    from simclr_core.augmentations import make_views as real

    seen = []

    def recording(images, *args, **kwargs):
        views = real(images, *args, **kwargs)
        seen.append((images.clone(), views[-1].clone()))
        return views

    monkeypatch.setattr(trainer_module, "make_views", recording)
    return seen


@pytest.mark.parametrize("change", [
    {"augment.pipeline": [OpSpec("rotate")]},
    {"train.temperature": 0.1},
    {"augment.color_strength": 1.0},
])
def test_one_seed_gives_the_same_batches_base_crops_and_initial_weights_in_every_cell(monkeypatch, change):
    from simclr_core.trainer import build

    def config_with(values: dict) -> RunConfig:
        config = tiny_config(epochs=3, seed=5)
        config.augment.protocol, config.augment.base_crop = "asymmetric", True
        config.augment.pipeline = [OpSpec("crop"), OpSpec("color")]
        config.probe = ProbeConfig(enabled=False, knn_every=0)
        for key, value in values.items():
            section, name = key.split(".")
            setattr(getattr(config, section), name, value)
        return config

    base, changed = config_with({}), config_with(change)
    runs = []
    for config in (base, changed):
        seen = _record_batches(monkeypatch)
        train(config)
        runs.append(seen)
    assert len(runs[0]) == len(runs[1]) == 3 * (160 // 32)  # three epochs of steps
    for (images_a, base_a), (images_b, base_b) in zip(*runs):
        assert torch.equal(images_a, images_b)  # the same images in the same order, every epoch
        assert torch.equal(base_a, base_b)  # the same base crop of each
    first = dict(build(base).model.state_dict())
    for name, value in build(changed).model.state_dict().items():
        assert torch.equal(first[name], value), name
    # And another seed is other randomness.
    other = _record_batches(monkeypatch)
    train(config_with({"train.seed": 6}))
    assert not torch.equal(other[0][0], runs[0][0][0])


def test_an_op_shared_by_two_cells_draws_the_same_values_at_every_step(monkeypatch):
    """crop in crop and in crop->sobel: the same boxes at every step of training (one stream per op;
    with one stream for the whole pipeline they differed from the second batch on)."""
    from simclr_core.augmentations import _sobel_edges, make_views as real

    def firsts(pipeline):
        config = tiny_config(epochs=2, seed=5)
        config.augment.protocol, config.augment.base_crop = "asymmetric", False
        config.augment.pipeline = pipeline
        config.probe = ProbeConfig(enabled=False, knn_every=0)
        seen = []
        monkeypatch.setattr(trainer_module, "make_views",
                            lambda *args, **kwargs: seen.append(real(*args, **kwargs)[0]) or [seen[-1], args[0]])
        train(config)
        return seen

    cropped, edges = firsts([OpSpec("crop")]), firsts([OpSpec("crop"), OpSpec("sobel")])
    assert len(cropped) == len(edges) == 2 * (160 // 32)
    for step, (a, b) in enumerate(zip(cropped, edges)):
        assert torch.equal(_sobel_edges(a).expand_as(a), b), f"step {step}"
    assert not torch.equal(cropped[0], cropped[1])  # and each step draws anew


def test_progress_reports_every_step_then_the_monitor_and_the_probe():
    seen = []
    train(tiny_config(epochs=2), progress=lambda *event: seen.append(event))
    steps = [event for event in seen if event[0] == "train"]
    assert [done for _, done, _ in steps] == list(range(1, 11)) and {total for *_, total in steps} == {10}
    assert [event for event in seen if event[0] != "train"] == [("knn", 1, 2), ("knn", 2, 2), ("probe", 0, 1)]
    assert seen.index(("knn", 1, 2)) == 5 and seen[-1] == ("probe", 0, 1)  # after epoch 1's five steps


@pytest.mark.parametrize("native_bf16, precision, expected", [
    (False, "auto", None),  # AVX2 or AVX-512 without BF16: bf16 there is emulated and slower than fp32
    (True, "auto", torch.bfloat16),  # AVX512-BF16 / AMX
    (False, "bf16", torch.bfloat16),  # asked for: honoured, however slow
    (True, "fp32", None),
])
def test_precision_auto_follows_the_cpu_flavour(monkeypatch, native_bf16, precision, expected):
    monkeypatch.setattr(trainer_module.cpu_isa, "native_bf16", lambda: native_bf16)
    autocast, _ = numeric_settings(TrainConfig(precision=precision), torch.device("cpu"))
    assert autocast == expected


def test_precision_auto_is_fp32_on_avx512_without_bf16_though_onednn_would_emulate_it(monkeypatch):
    """Issue 28's machine: AVX-512, no AVX512-BF16 or AMX, oneDNN saying bf16 is supported (emulated)."""
    for name, value in [("_is_amx_tile_supported", False), ("_is_avx512_bf16_supported", False),
                        ("_is_avx512_supported", True), ("_is_avx2_supported", True)]:
        monkeypatch.setattr(torch.cpu, name, lambda value=value: value)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert numeric_settings(TrainConfig(precision="auto"), torch.device("cpu"))[0] is None
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert numeric_settings(TrainConfig(precision="auto"), torch.device("cpu"))[0] == torch.bfloat16
