"""simclr_core.op_contract and library_ops: each clause of the op contract refuses an op that breaks it,
with its message; ops handed to the engine (register_op) run in pipelines; a torchvision transform wrapped
by library_ops draws from its op's stream only, per sample."""

import functools
import random
from typing import Annotated, Literal, Optional

import numpy
import pytest
import torch

from simclr_core import augmentations
from simclr_core.augmentations import OpStreams, apply_pipeline, register_op, unregister_op
from simclr_core.config import ConfigError, OpSpec, validate_pipeline
from simclr_core.library_ops import kornia_augmentation, torchvision_op, torchvision_transform
from simclr_core.op_contract import OpContractError, check_op, contract_batch
from simclr_core.op_schema import Range, check_from_annotation


def good(images, generator, *, p: Annotated[float, Range(0, 1)] = 0.5):
    apply = torch.rand(images.shape[0], generator=generator, device=images.device) < p
    return torch.where(apply.view(-1, 1, 1, 1), 1.0 - images, images)


def raises(images, generator):
    raise RuntimeError("shapes\n do not match")


def in_place(images, generator):
    torch.rand(1, generator=generator)
    return images.mul_(0.5)


def wrong_shape(images, generator):
    torch.rand(1, generator=generator)
    return images[:, :, :8]


def wrong_dtype(images, generator):
    return good(images, generator).double()


def out_of_range(images, generator):
    return good(images, generator) * 2.0


def own_state(images, generator, _drawn=[]):
    # A generator of its own, carried between calls: the same stream gives another output each call.
    _drawn.append(1)
    return good(images, torch.Generator().manual_seed(len(_drawn)))


def ignores_its_draws(images, generator):
    torch.rand(images.shape[0], generator=generator)
    return images.flip(-1)


def global_draw(images, generator):
    torch.rand(1)  # torch's global generator
    return good(images, generator)


def numpy_global_draw(images, generator):
    numpy.random.rand()
    return good(images, generator)


@pytest.fixture
def registered():
    names = []

    def register(name, function, **kwargs):
        register_op(name, function, **kwargs)
        names.append(name)

    yield register
    for name in names:
        unregister_op(name)


@pytest.mark.parametrize("op, clause, says", [
    (raises, "runs", "it raised RuntimeError: shapes do not match"),
    (in_place, "in place", "it changed its input batch"),
    (wrong_shape, "shape", "it returned shape (64, 3, 8, 16) for a batch of (64, 3, 16, 16)"),
    (wrong_dtype, "dtype", "it returned torch.float64 for a batch of torch.float32"),
    (out_of_range, "range", "its values span [0, 2]"),
    (own_state, "same stream", "two calls on one stream gave different outputs"),
    (ignores_its_draws, "different streams", "it drew from its stream, yet 9 streams gave one output"),
    (global_draw, "global generator", "it drew from a global random generator"),
    (numpy_global_draw, "global generator", "it drew from a global random generator"),
])
def test_each_clause_refuses_an_op_that_breaks_it(registered, op, clause, says):
    registered("broken", op)
    with pytest.raises(OpContractError) as caught:
        check_op("broken")
    assert caught.value.clause == clause and caught.value.op == "broken"
    assert str(caught.value).startswith(f"op broken breaks the op contract ({clause}): ")
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_good_op_and_a_deterministic_one_keep_the_contract(registered):
    registered("good", good)
    registered("mirror", lambda images, generator: images.flip(-1))  # draws nothing: deterministic, exempt
    check_op("good")
    check_op("good", {"p": 0.05})
    check_op("mirror")


def test_a_registered_op_runs_in_a_pipeline_with_its_parameters_checked(registered):
    registered("good", good)
    images = contract_batch()
    out = apply_pipeline(images, [OpSpec("crop"), OpSpec("good", {"p": 1.0})], OpStreams(0))
    assert out.shape == images.shape and augmentations.op_params("good") == ["p"]
    validate_pipeline([OpSpec("good", {"p": 0.3})])
    with pytest.raises(ConfigError, match=r"augment.pipeline\[0\].p \(good\): 1.5 is not allowed; expected a "
                                          r"number in \[0, 1\]"):
        validate_pipeline([OpSpec("good", {"p": 1.5})])
    with pytest.raises(ValueError, match="'crop' is a built-in op"):
        register_op("crop", good)


@pytest.mark.parametrize("annotation, default, accepts, refuses, allowed", [
    ("float", 0.5, [0.0, 3], ["a", True, None], "a number"),
    ("Annotated[float, Range(0, 1)]", 0.5, [0, 1.0], [1.5, -0.1], "a number in [0, 1]"),
    ("typing.Annotated[float, Range(low=0.5, high=None)]", 1.0, [0.5, 9], [0.4], "a number >= 0.5"),
    ("Optional[int]", None, [None, 3], [3.5], "null or an integer"),
    ("int | None", None, [None, 3], ["3"], "null or an integer"),
    ("tuple[float, float]", (0.1, 2.0), [[0.1, 2.0]], [[1.0], 0.5], "a pair [low, high] of numbers"),
    ("Literal['sum', 'max']", "sum", ["max"], ["min", 1], "one of 'sum', 'max'"),
    (None, 3, [4], [4.5], "an integer"),
])
def test_parameter_checks_come_from_annotations(annotation, default, accepts, refuses, allowed):
    check, text = check_from_annotation(annotation, default)
    assert text == allowed
    assert all(check(value) for value in accepts) and not any(check(value) for value in refuses)


def test_checks_read_from_an_imported_signature_match_those_read_from_its_text(registered):
    def op(images, generator, *, p: Annotated[float, Range(0, 1)] = 0.5, mode: Literal["a", "b"] = "a",
           size: Optional[int] = None):
        return images.clone()

    registered("texts", op)
    from simclr_core.op_schema import OP_CHECKS

    assert [allowed for _, allowed in OP_CHECKS["texts"].values()] == [
        "a number in [0, 1]", "one of 'a', 'b'", "null or an integer"]


def test_a_torchvision_transform_draws_from_its_stream_only_and_per_sample(registered):
    registered("tv_solarize", functools.partial(torchvision_op(torchvision_transform("RandomSolarize")),
                                                threshold=0.5), checks={"p": (lambda v: True, "any")})
    check_op("tv_solarize")  # every clause, the global generator's included
    images = contract_batch()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = augmentations.OPS["tv_solarize"](images, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    solarized = [not torch.equal(first[i], images[i]) for i in range(2, len(images))]
    assert 0 < sum(solarized) < len(solarized)  # p = 0.5 drawn per image, not once for the batch
    # Pairing: the same stream gives the same images whatever the global generator holds.
    torch.manual_seed(999)
    random.seed(4)
    assert torch.equal(first, augmentations.OPS["tv_solarize"](images, torch.Generator().manual_seed(5)))


def test_a_missing_transform_or_library_is_named():
    with pytest.raises(ValueError, match="torchvision.transforms.v2 has no transform 'RandomSolarise'"):
        torchvision_transform("RandomSolarise")
    try:
        import kornia  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"Kornia is not installed; pip install 'simclr-ablations\[kornia\]'"):
            kornia_augmentation("RandomSolarize")


def test_a_kornia_augmentation_draws_from_its_stream_batched(registered):
    pytest.importorskip("kornia", reason="the kornia extra is not installed")
    from simclr_core.library_ops import kornia_op

    registered("kornia_solarize", kornia_op(kornia_augmentation("RandomSolarize")), checks={})
    check_op("kornia_solarize")
    images = contract_batch()
    state = torch.get_rng_state()
    first = augmentations.OPS["kornia_solarize"](images, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, augmentations.OPS["kornia_solarize"](images, torch.Generator().manual_seed(5)))


def test_the_preview_names_a_registered_op_like_a_built_in_one(registered, tmp_path):
    from simclr_core.config import AugmentConfig
    from simclr_core.preview import preview_labels, render_preview

    registered("solarize", good)
    config = AugmentConfig(protocol="asymmetric", base_crop=True, pipeline=[OpSpec("crop"), OpSpec("solarize")])
    path = render_preview(contract_batch()[:4], config, torch.Generator().manual_seed(0), tmp_path / "preview.png")
    assert path.is_file()
    assert preview_labels(config, 2) == [("original", ""), ("view 1", "base crop, crop+solarize"),
                                         ("view 2", "base crop")]
