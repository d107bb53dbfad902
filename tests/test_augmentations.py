"""Tests of the batched augmentations: shape, range, determinism, per-sample independence, and the
semantics of each op against slow per-image references (torchvision functional ops, torch.flip,
torch.rot90, literal formulas)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from simclr_core import augmentations as aug
from simclr_core import colour
from simclr_core import preview
from simclr_core.augmentations import OPS, apply_pipeline, make_views, op_params, validate_pipeline
from simclr_core.preview import render_preview
from simclr_core.config import AugmentConfig, ConfigError, OpSpec
from simclr_core.op_schema import OP_PARAMETERS

# Ops with per-sample randomness at their defaults (sobel at p=1 is deterministic).
RANDOM_OPS = sorted(set(OPS) - {"sobel"})


@pytest.fixture(autouse=True, scope="module")
def one_cpu_thread():
    # These batches are tiny; on a shared, loaded 2-core machine a second OpenMP thread that is not
    # scheduled makes every small op wait for it (color_jitter on 16 images: 2 ms on one thread,
    # 250 ms on two under load). Restored afterwards for the other test modules.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_images(batch: int = 16, size: int = 32, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def copies_of_one_image(batch: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """A batch of identical copies of one random image: any difference between outputs comes from
    per-sample parameter draws."""
    return random_images(1, size, seed).expand(batch, -1, -1, -1).contiguous()


def seeded(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# Every op: shape, dtype, range, determinism, independence.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("fill", ["random", "zeros", "ones"])
def test_op_keeps_shape_dtype_and_range(name, fill):
    images = {"random": random_images(), "zeros": torch.zeros(16, 3, 32, 32),
              "ones": torch.ones(16, 3, 32, 32)}[fill]
    out = OPS[name](images, seeded())
    assert out.shape == images.shape
    assert out.dtype == images.dtype
    assert out.device == images.device
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_keeps_float64(name):
    images = random_images(4, dtype=torch.float64)
    out = OPS[name](images, seeded())
    assert out.dtype == torch.float64 and out.shape == images.shape


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_is_bit_identical_under_a_seed(name):
    images = random_images()
    first = OPS[name](images, seeded(7))
    second = OPS[name](images, seeded(7))
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_does_not_modify_its_input(name):
    images = random_images()
    before = images.clone()
    OPS[name](images, seeded())
    assert torch.equal(images, before)


@pytest.mark.parametrize("name", RANDOM_OPS)
def test_op_draws_parameters_per_sample(name):
    # Copies of one image must not all come out alike: one draw per call would make them identical.
    out = OPS[name](copies_of_one_image(32), seeded())
    distinct = {out[i].numpy().tobytes() for i in range(len(out))}
    assert len(distinct) > 1


@pytest.mark.parametrize("name", RANDOM_OPS)
def test_different_seeds_give_different_outputs(name):
    images = random_images()
    assert not torch.equal(OPS[name](images, seeded(1)), OPS[name](images, seeded(2)))


def test_the_configs_op_table_is_what_the_ops_take():
    # op_schema.OP_PARAMETERS lets a study file be checked without torch; it must name exactly the ops and
    # the parameters their signatures define.
    assert {name: tuple(op_params(name)) for name in OPS} == OP_PARAMETERS


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_param_has_a_check_and_its_default_passes_it(name):
    for param, spec in inspect.signature(OPS[name]).parameters.items():
        if param in ("images", "generator"):
            continue
        assert spec.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}.{param} should be keyword-only"
        validate_pipeline([OpSpec(name, {param: spec.default})])


# ---------------------------------------------------------------------------------------------
# crop
# ---------------------------------------------------------------------------------------------


def test_crop_full_box_is_identity():
    images = random_images()
    out = aug.crop(images, seeded(), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(out, images, atol=1e-5, rtol=0)


def ramp_images(batch: int, size: int) -> torch.Tensor:
    """Red = horizontal position, green = vertical position, at pixel centres, in float64."""
    coords = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    red = coords.view(1, size).expand(size, size)
    green = coords.view(size, 1).expand(size, size)
    image = torch.stack([red, green, torch.zeros_like(red)])
    return image.expand(batch, -1, -1, -1).contiguous()


def test_crop_boxes_have_the_requested_area_and_aspect():
    # A bilinear resize of a linear ramp is a linear ramp, so each output's slope and offset give back
    # its crop box. Columns 2 .. size-3 avoid the border clamp (boxes are at least 0.24 of the side).
    size, batch = 32, 256
    out = aug.crop(ramp_images(batch, size), seeded())
    first, last = 2, size - 3
    width_fraction = (out[:, 0, 0, last] - out[:, 0, 0, first]) / (last - first) * size
    height_fraction = (out[:, 1, last, 0] - out[:, 1, first, 0]) / (last - first) * size
    left = out[:, 0, 0, first] - (first + 0.5) * width_fraction / size
    top = out[:, 1, first, 0] - (first + 0.5) * height_fraction / size
    area = width_fraction * height_fraction
    aspect = width_fraction / height_fraction
    tolerance = 1e-6
    assert (area >= 0.08 - tolerance).all() and (area <= 1 + tolerance).all()
    assert (aspect >= 3 / 4 - tolerance).all() and (aspect <= 4 / 3 + tolerance).all()
    assert (left >= -tolerance).all() and (left + width_fraction <= 1 + tolerance).all()
    assert (top >= -tolerance).all() and (top + height_fraction <= 1 + tolerance).all()
    # The area fraction is drawn uniformly in (0.08, 1): the range is used, not one value.
    assert area.min() < 0.2 and area.max() > 0.9
    # Aspect ratio log-uniform: about as many boxes wider than tall as taller than wide.
    wider = (aspect > 1).double().mean()
    assert 0.35 < wider < 0.65


def test_crop_differs_between_copies_of_one_image():
    out = aug.crop(copies_of_one_image(64), seeded())
    flat = out.flatten(1)
    distances = torch.cdist(flat, flat)
    off_diagonal = distances[~torch.eye(64, dtype=torch.bool)]
    assert (off_diagonal > 1e-3).all()


def test_crop_falls_back_to_a_centre_crop_when_no_box_fits():
    # ratio (2, 2) with area 1.0 never fits a square image: the fallback is the full width, half height.
    # The first and last output rows sample half a pixel outside rows 8..23, so compare the rest.
    images = ramp_images(4, 32).float()
    out = aug.crop(images, seeded(), scale=(1.0, 1.0), ratio=(2.0, 2.0))
    expected = F.interpolate(images[:, :, 8:24, :], size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(out[:, :, 1:-1], expected[:, :, 1:-1], atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Flips and rotation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,dim", [("hflip", -1), ("vflip", -2)])
def test_flip_flips_about_half_the_samples_exactly(name, dim):
    images = copies_of_one_image(256)
    out = OPS[name](images, seeded())
    flipped = torch.flip(images, dims=(dim,))
    is_flipped = (out == flipped).flatten(1).all(dim=1)
    is_kept = (out == images).flatten(1).all(dim=1)
    assert (is_flipped ^ is_kept).all()
    assert 0.4 < is_flipped.float().mean() < 0.6


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_flip_probability_bounds(p):
    images = random_images()
    out = aug.hflip(images, seeded(), p=p)
    assert torch.equal(out, torch.flip(images, dims=(-1,)) if p else images)


def test_rotate_turns_each_sample_by_a_quarter_multiple():
    images = copies_of_one_image(64)
    out = aug.rotate(images, seeded())
    turns_seen = set()
    for i in range(len(out)):
        matches = [k for k in range(4) if torch.equal(out[i], torch.rot90(images[i], k, dims=(-2, -1)))]
        assert len(matches) == 1 and matches[0] != 0
        turns_seen.add(matches[0])
    assert turns_seen == {1, 2, 3}


def test_rotate_rejects_non_square_images():
    with pytest.raises(ValueError, match="square"):
        aug.rotate(torch.rand(2, 3, 16, 32), seeded())


# ---------------------------------------------------------------------------------------------
# Colour
# ---------------------------------------------------------------------------------------------


def test_color_drop_is_luma_replicated():
    images = random_images()
    out = aug.color_drop(images, seeded(), p=1.0)
    red, green, blue = images.unbind(dim=1)
    literal = (0.299 * red + 0.587 * green + 0.114 * blue).unsqueeze(1).expand_as(images)
    assert torch.allclose(out, literal, atol=1e-3)
    assert torch.allclose(out, TF.rgb_to_grayscale(images, num_output_channels=3), atol=1e-6)


def test_color_drop_probability():
    images = random_images(512)
    out = aug.color_drop(images, seeded(), p=0.2)
    dropped = (out[:, 0] == out[:, 1]).flatten(1).all(dim=1) & (out[:, 1] == out[:, 2]).flatten(1).all(dim=1)
    assert 0.14 < dropped.float().mean() < 0.26


@pytest.mark.parametrize("adjust,reference", [
    (colour.adjust_brightness, TF.adjust_brightness),
    (colour.adjust_contrast, TF.adjust_contrast),
    (colour.adjust_saturation, TF.adjust_saturation),
])
def test_per_sample_adjust_matches_torchvision(adjust, reference):
    images = random_images(8)
    factors = torch.tensor([0.0, 0.3, 0.8, 1.0, 1.2, 1.5, 1.8, 2.0])
    out = adjust(images, factors)
    for i, factor in enumerate(factors.tolist()):
        assert torch.allclose(out[i], reference(images[i], factor), atol=1e-6)


def test_adjust_hue_matches_torchvision():
    images = random_images(8)
    # Saturated colours and gray pixels exercise the ties and the chroma-0 guard.
    images[0] = images[0].round()
    images[1] = 0.5
    shifts = torch.tensor([-0.5, -0.3, -0.1, 0.0, 0.05, 0.2, 0.4, 0.5])
    out = colour.adjust_hue(images, shifts)
    for i, shift in enumerate(shifts.tolist()):
        assert torch.allclose(out[i], TF.adjust_hue(images[i], shift), atol=1e-3)


def test_brightness_only_jitter_scales_each_image_by_its_own_factor():
    # Inputs below 0.5 and factors up to 1.8 never clip, so out / in is the sample's factor.
    images = random_images(64) * 0.5 + 0.01
    out = aug.color_jitter(images, seeded(), brightness=0.8, contrast=0.0, saturation=0.0, hue=0.0, p=1.0)
    ratio = (out / images).flatten(1)
    factors = ratio.mean(dim=1)
    assert torch.allclose(ratio, factors.unsqueeze(1).expand_as(ratio), atol=1e-5)
    assert (factors >= 0.2 - 1e-6).all() and (factors <= 1.8 + 1e-6).all()
    assert factors.unique().numel() == 64


def test_color_jitter_matches_a_per_image_torchvision_reference():
    # Slow reference: replay the op's draws (apply mask, 3 factors, hue shift, order keys, in that
    # order) and apply torchvision's functional ops image by image in each image's own order.
    images = random_images(24)
    strength = 0.5
    out = aug.color_jitter(images, seeded(3), strength=strength)
    generator = seeded(3)
    apply = torch.rand(24, generator=generator) < 0.8
    spread = 0.8 * strength
    factors = [1 - spread + 2 * spread * torch.rand(24, generator=generator) for _ in range(3)]
    hue_shift = -0.2 * strength + 0.4 * strength * torch.rand(24, generator=generator)
    order = torch.argsort(torch.rand(24, 4, generator=generator), dim=1)
    assert len({tuple(row) for row in order.tolist()}) > 4
    for i in range(24):
        expected = images[i]
        if apply[i]:
            for kind in order[i].tolist():
                if kind == 0:
                    expected = TF.adjust_brightness(expected, factors[0][i].item())
                elif kind == 1:
                    expected = TF.adjust_contrast(expected, factors[1][i].item())
                elif kind == 2:
                    expected = TF.adjust_saturation(expected, factors[2][i].item())
                else:
                    expected = TF.adjust_hue(expected, hue_shift[i].item())
        assert torch.allclose(out[i], expected, atol=1e-3), f"sample {i}"


def test_color_jitter_probability_zero_and_strength_zero_are_identity():
    images = random_images()
    assert torch.equal(aug.color_jitter(images, seeded(), p=0.0), images)
    assert torch.equal(aug.color(images, seeded(), strength=0.0, drop_prob=0.0), images)


def test_color_is_jitter_then_drop():
    images = random_images()
    out = aug.color(images, seeded(), strength=0.5, jitter_prob=0.0, drop_prob=1.0)
    assert torch.allclose(out, TF.rgb_to_grayscale(images, num_output_channels=3), atol=1e-6)
    jittered = aug.color(images, seeded(4), strength=0.5, drop_prob=0.0)
    assert torch.equal(jittered, aug.color_jitter(images, seeded(4), strength=0.5, p=0.8))


# ---------------------------------------------------------------------------------------------
# cutout, blur, noise, sobel
# ---------------------------------------------------------------------------------------------


def test_cutout_erases_one_clipped_square_per_image():
    images = torch.ones(256, 3, 32, 32)
    out = aug.cutout(images, seeded(), side_fraction=0.5, fill=0.0)
    erased = out[:, 0] == 0.0
    assert (out[:, 0:1] == out).all()  # the same region in every channel
    rows_hit = erased.any(dim=2)
    cols_hit = erased.any(dim=1)
    # The erased region is exactly a rectangle: the outer product of the rows and columns it touches.
    assert torch.equal(erased, rows_hit.unsqueeze(2) & cols_hit.unsqueeze(1))
    heights, widths = rows_hit.sum(dim=1), cols_hit.sum(dim=1)
    # A 16-pixel square, clipped at the border to no less than half its side.
    assert (heights <= 16).all() and (widths <= 16).all()
    assert (heights >= 8).all() and (widths >= 8).all()
    assert (heights == 16).any() and (heights < 16).any()


def test_cutout_fill_value_and_probability():
    images = random_images(64)
    out = aug.cutout(images, seeded(), fill=0.25, p=0.5)
    changed = (out != images).flatten(1).any(dim=1)
    assert 0.3 < changed.float().mean() < 0.7
    assert (out[out != images] == 0.25).all()


def test_blur_kernel_sums_to_one():
    constant = torch.full((8, 3, 32, 32), 0.37)
    out = aug.blur(constant, seeded(), p=1.0)
    assert torch.allclose(out, constant, atol=1e-6)


@pytest.mark.parametrize("size,radius", [(32, 1), (64, 3), (224, 11)])
def test_blur_kernel_size_is_a_tenth_of_the_side_made_odd(size, radius):
    impulse = torch.zeros(2, 3, size, size)
    impulse[:, :, size // 2, size // 2] = 1.0
    out = aug.blur(impulse, seeded(), p=1.0, sigma=(2.0, 2.0))
    support = (out[:, 0] > 0).nonzero()
    assert support[:, 1].min() == size // 2 - radius and support[:, 1].max() == size // 2 + radius
    assert support[:, 2].min() == size // 2 - radius and support[:, 2].max() == size // 2 + radius
    # Away from the borders nothing leaks: the mass is preserved.
    assert torch.allclose(out.sum(dim=(-2, -1)), torch.ones(2, 3), atol=1e-5)


def test_blur_matches_a_per_image_gaussian_reference():
    images = random_images(8)
    out = aug.blur(images, seeded(5), p=0.5)
    generator = seeded(5)  # replay: apply mask, then sigmas
    apply = torch.rand(8, generator=generator) < 0.5
    sigmas = 0.1 + 1.9 * torch.rand(8, generator=generator)
    assert 0 < apply.sum() < 8
    offsets = torch.arange(-1, 2, dtype=torch.float32)
    for i in range(8):
        if not apply[i]:
            assert torch.equal(out[i], images[i])
            continue
        kernel_1d = torch.exp(-offsets**2 / (2 * sigmas[i] ** 2))
        kernel_1d = kernel_1d / kernel_1d.sum()
        kernel_2d = torch.outer(kernel_1d, kernel_1d).expand(3, 1, 3, 3)
        padded = F.pad(images[i : i + 1], (1, 1, 1, 1), mode="reflect")
        expected = F.conv2d(padded, kernel_2d, groups=3)[0]
        assert torch.allclose(out[i], expected, atol=1e-6)


def test_noise_statistics_and_clamping():
    images = torch.full((16, 3, 32, 32), 0.5)
    out = aug.noise(images, seeded(), std=0.05)
    difference = out - images
    assert abs(difference.mean().item()) < 0.005
    assert abs(difference.std().item() - 0.05) < 0.005
    huge = aug.noise(images, seeded(), std=100.0)
    assert huge.min() >= 0 and huge.max() <= 1
    assert torch.equal(aug.noise(images, seeded(), std=0.0), images)
    assert torch.equal(aug.noise(images, seeded(), p=0.0), images)


def test_sobel_marks_a_step_edge():
    images = torch.zeros(2, 3, 16, 16)
    images[:, :, :, 8:] = 0.8
    out = aug.sobel(images, seeded())
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert out.max() == 1.0
    edge_columns = out[:, 0].amax(dim=(0, 1)).nonzero().flatten().tolist()
    assert edge_columns == [7, 8]
    # A flat image has no edges; normalising must not stretch rounding noise to 1.
    assert torch.equal(aug.sobel(torch.full((2, 3, 16, 16), 0.4), seeded()), torch.zeros(2, 3, 16, 16))


# ---------------------------------------------------------------------------------------------
# Pipelines and views
# ---------------------------------------------------------------------------------------------


def test_pipeline_color_strength_is_the_default_for_color_entries():
    images = random_images()
    out = apply_pipeline(images, [OpSpec("color")], seeded(2), color_strength=0.3)
    assert torch.equal(out, aug.color(images, seeded(2), strength=0.3))
    pinned = apply_pipeline(images, [OpSpec("color_jitter", {"strength": 0.9})], seeded(2), color_strength=0.3)
    assert torch.equal(pinned, aug.color_jitter(images, seeded(2), strength=0.9))
    unset = apply_pipeline(images, [OpSpec("color")], seeded(2))
    assert torch.equal(unset, aug.color(images, seeded(2), strength=1.0))


def test_pipeline_applies_ops_in_order():
    images = random_images()
    pipeline = [OpSpec("crop"), OpSpec("hflip", {"p": 1.0})]
    generator = seeded(9)
    expected = aug.hflip(aug.crop(images, generator), generator, p=1.0)
    assert torch.equal(apply_pipeline(images, pipeline, seeded(9)), expected)


def test_pipeline_rejects_uint8_images():
    with pytest.raises(TypeError, match="255"):
        apply_pipeline(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), [OpSpec("hflip")], seeded())


def test_symmetric_views_are_independent_and_reproducible():
    images = random_images()
    config = AugmentConfig()
    views = make_views(images, config, seeded(), n_views=3)
    assert len(views) == 3
    assert all(view.shape == images.shape for view in views)
    assert not torch.equal(views[0], views[1]) and not torch.equal(views[1], views[2])
    again = make_views(images, config, seeded(), n_views=3)
    assert all(torch.equal(a, b) for a, b in zip(views, again))


def test_asymmetric_views_leave_the_second_branch_as_the_input():
    images = random_images()
    config = AugmentConfig(protocol="asymmetric", pipeline=[OpSpec("color")], base_crop=False)
    first, second = make_views(images, config, seeded())
    assert torch.equal(second, images)
    assert not torch.equal(first, images)


def test_asymmetric_base_crop_is_shared_by_all_views():
    images = random_images()
    config = AugmentConfig(protocol="asymmetric", pipeline=[OpSpec("noise", {"std": 0.0})], base_crop=True)
    views = make_views(images, config, seeded(), n_views=3)
    assert torch.equal(views[0], views[1]) and torch.equal(views[1], views[2])
    assert not torch.allclose(views[0], images, atol=1e-3)
    # The shared crop is the default random resized crop, drawn first from the generator.
    assert torch.equal(views[1], aug.crop(images, seeded()))


# ---------------------------------------------------------------------------------------------
# OpStreams: one stream per op, so pipelines that share an op share its draws.
# ---------------------------------------------------------------------------------------------

IDENTITY_CROP = OpSpec("crop", {"scale": [1.0, 1.0], "ratio": [1.0, 1.0]})  # exact identity, still draws


def _views(pipeline, streams, protocol="symmetric", n_views=2):
    config = AugmentConfig(pipeline=pipeline, protocol=protocol, base_crop=False, compile="off")
    return make_views(random_images(), config, streams, n_views=n_views)


def test_a_shared_op_draws_the_same_values_whatever_follows_it():
    streams = aug.OpStreams(seed=3).at(17)
    (cropped, _), (edges, _) = _views([OpSpec("crop")], streams), _views([OpSpec("crop"), OpSpec("sobel")], streams)
    # sobel at p = 1 is deterministic: crop->sobel is crop's very boxes, then edges.
    assert torch.equal(edges, aug._sobel_edges(cropped).expand_as(cropped))
    # With one generator for the whole pipeline the second batch would already differ; here the
    # same holds at any step, and the colour op in crop->color sees the same boxes too.
    (coloured, _) = _views([OpSpec("crop"), OpSpec("color")], streams)
    expected = aug.color(cropped, streams("color", 0, 0), strength=AugmentConfig().color_strength)
    assert torch.allclose(coloured, expected, atol=1e-6)


def test_a_shared_op_draws_the_same_values_in_any_order():
    streams = aug.OpStreams(seed=3).at(5)
    alone = _views([OpSpec("color")], streams)
    before = _views([OpSpec("color"), IDENTITY_CROP], streams)
    after = _views([IDENTITY_CROP, OpSpec("color")], streams)
    for a, b, c in zip(alone, before, after):
        assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)


def test_op_streams_differ_by_seed_step_view_and_occurrence_and_repeat_exactly():
    def draws(seed, step, op="crop", occurrence=0, view=0):
        return torch.rand(8, generator=aug.OpStreams(seed).at(step)(op, occurrence, view))

    assert torch.equal(draws(3, 4), draws(3, 4))
    assert torch.equal(draws(3, 4), torch.rand(8, generator=aug.OpStreams(3, step=4)("crop")))
    for other in (draws(4, 4), draws(3, 5), draws(3, 4, "color"), draws(3, 4, occurrence=1), draws(3, 4, view=1)):
        assert not torch.equal(draws(3, 4), other)
    # A reused stream object is reseeded at every call: nothing carries over from the last draw.
    streams = aug.OpStreams(3).at(4)
    torch.rand(100, generator=streams("crop"))
    assert torch.equal(torch.rand(8, generator=streams("crop")), draws(3, 4))


def test_views_of_one_pipeline_draw_from_streams_of_their_own():
    views = _views([OpSpec("crop")], aug.OpStreams(seed=0), n_views=3)
    assert not torch.equal(views[0], views[1]) and not torch.equal(views[1], views[2])
    # Two uses of one op in a pipeline are two streams: crop then crop is not one box applied twice.
    twice = _views([OpSpec("crop"), OpSpec("crop")], aug.OpStreams(seed=0))[0]
    assert not torch.equal(twice, aug.crop(views[0], aug.OpStreams(seed=0)("crop", 0, 0)))
    assert torch.equal(twice, aug.crop(views[0], aug.OpStreams(seed=0)("crop", 1, 0)))


def test_asymmetric_base_crop_has_its_own_stream_under_op_streams():
    streams = aug.OpStreams(seed=2).at(9)
    config = AugmentConfig(protocol="asymmetric", pipeline=[OpSpec("crop")], base_crop=True, compile="off")
    first, second = make_views(random_images(), config, streams)
    assert torch.equal(second, aug.crop(random_images(), streams("base_crop")))
    assert torch.equal(first, aug.crop(second, streams("crop")))


def test_unknown_protocol_is_a_config_error():
    with pytest.raises(ConfigError, match="augment.protocol"):
        make_views(random_images(), AugmentConfig(protocol="sideways"), seeded())


# ---------------------------------------------------------------------------------------------
# augment.compile: the colour ops as fused_color's compiled kernel, against the eager ops.
# ---------------------------------------------------------------------------------------------

COLOR_PIPELINES = [
    [OpSpec("crop"), OpSpec("hflip"), OpSpec("color")],
    [OpSpec("color", {"strength": 1.0, "jitter_prob": 1.0, "drop_prob": 0.5})],
    [OpSpec("color_jitter", {"p": 1.0})],
    [OpSpec("color_jitter", {"random_order": False})],
    [OpSpec("color_jitter", {"hue": 0.0, "contrast": 0.0})],
    [OpSpec("color_jitter", {"brightness": 0.9, "saturation": 2.0, "hue": 0.5, "p": 1.0})],
]


@pytest.mark.needs_cpp_compiler
@pytest.mark.parametrize("pipeline", COLOR_PIPELINES, ids=lambda p: "+".join(f"{s.op}{s.params}" for s in p))
def test_compiled_colour_matches_the_eager_ops(pipeline):
    # Same generator draws on both paths, so the views agree to float rounding (the compiled kernel
    # may contract multiply-adds), over a batch big enough that every order of the four kinds occurs.
    images = random_images(batch=96)
    eager = make_views(images, AugmentConfig(pipeline=pipeline, compile="off"), seeded(), n_views=2)
    compiled = make_views(images, AugmentConfig(pipeline=pipeline, compile="on"), seeded(), n_views=2)
    for e, c in zip(eager, compiled):
        assert torch.allclose(c, e, atol=1e-5, rtol=0), (c - e).abs().max()
        assert c.min() >= 0 and c.max() <= 1


def test_colour_kernel_uncompiled_matches_the_eager_ops():
    # The kernel's formulation (blend slots around the hue position) on its own, without Inductor.
    from simclr_core.fused_color import color_kernel

    images = random_images(batch=64)
    draws = colour._draw_jitter(images, seeded(), **{**aug._defaults("color_jitter"), "p": 0.7})
    drop = torch.rand(64, generator=seeded(5)) < 0.3
    expected = colour._drop_eager(colour._jitter_eager(images, draws), drop)
    got = color_kernel(images, *colour._jitter_slots(draws), drop)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.needs_cpp_compiler
def test_compiled_colour_leaves_unjittered_samples_exactly_unchanged():
    images = random_images(batch=32)
    config = AugmentConfig(pipeline=[OpSpec("color", {"jitter_prob": 0.0, "drop_prob": 0.0})], compile="on")
    assert torch.equal(make_views(images, config, seeded(), n_views=1)[0], images)


@pytest.mark.needs_cpp_compiler
def test_compiled_colour_is_bit_identical_under_a_seed_and_varies_with_it():
    images = random_images(batch=48)
    config = AugmentConfig(compile="on")
    first = make_views(images, config, seeded(7))
    again = make_views(images, config, seeded(7))
    other = make_views(images, config, seeded(8))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


@pytest.mark.needs_cpp_compiler
def test_compiled_colour_handles_a_new_batch_size_and_float64():
    # A last partial batch or a preview has another shape; float64 is accepted by every op.
    for batch, dtype in ((5, torch.float32), (17, torch.float32), (9, torch.float64)):
        images = random_images(batch=batch, dtype=dtype)
        pipeline = [OpSpec("color", {"jitter_prob": 1.0})]
        eager = make_views(images, AugmentConfig(pipeline=pipeline, compile="off"), seeded(), n_views=1)[0]
        compiled = make_views(images, AugmentConfig(pipeline=pipeline, compile="on"), seeded(), n_views=1)[0]
        assert compiled.dtype == dtype and compiled.shape == images.shape
        assert torch.allclose(compiled, eager, atol=1e-5, rtol=0)


def test_auto_falls_back_to_the_eager_ops_with_one_warning_where_compiling_fails(monkeypatch):
    from simclr_core import fused_color

    def cannot_compile(*args):
        raise RuntimeError("InductorError: no C++ compiler found\nmore detail")

    monkeypatch.setattr(fused_color, "_compiled", cannot_compile)
    monkeypatch.setattr(fused_color, "_failures", {})
    images = random_images(batch=24)
    eager = make_views(images, AugmentConfig(compile="off"), seeded())
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found.*augment.compile: off"):
        fallback = make_views(images, AugmentConfig(compile="auto"), seeded())
    assert all(torch.equal(a, b) for a, b in zip(fallback, eager))
    assert "no C++ compiler" in fused_color.compile_failure(images.device)
    assert aug.colour_path(AugmentConfig(), images.device).startswith("eager (compiling failed: RuntimeError")
    # Warned once: later batches go straight to the eager ops.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_views(images, AugmentConfig(compile="auto"), seeded())
    with pytest.raises(RuntimeError, match="augment.compile: on, but torch.compile failed on cpu.*auto or off"):
        make_views(images, AugmentConfig(compile="on"), seeded())


def test_compile_mode_is_checked():
    with pytest.raises(ConfigError, match="augment.compile: 'fast' is not allowed; expected one of auto, on, off"):
        make_views(random_images(), AugmentConfig(compile="fast"), seeded())


# ---------------------------------------------------------------------------------------------
# validate_pipeline
# ---------------------------------------------------------------------------------------------


def test_default_pipeline_is_valid():
    validate_pipeline(AugmentConfig().pipeline)


def test_unknown_op_names_the_key_index_and_valid_names():
    pipeline = [OpSpec("crop"), OpSpec("hflip"), OpSpec("solarize")]
    with pytest.raises(ConfigError) as error:
        validate_pipeline(pipeline, key="augment.pipeline")
    message = str(error.value)
    assert "augment.pipeline[2]" in message and "'solarize'" in message
    assert ", ".join(sorted(OPS)) in message


def test_unknown_param_names_the_op_and_its_valid_params():
    with pytest.raises(ConfigError) as error:
        validate_pipeline([OpSpec("blur", {"kernel": 5})])
    message = str(error.value)
    assert "augment.pipeline[0]" in message and "blur" in message and "'kernel'" in message
    assert "sigma" in message and "p" in message


@pytest.mark.parametrize("op,params,allowed", [
    ("hflip", {"p": 1.5}, "[0, 1]"),
    ("hflip", {"p": True}, "[0, 1]"),
    ("color", {"jitter_prob": -0.1}, "[0, 1]"),
    ("color", {"strength": -1.0}, ">= 0"),
    ("noise", {"std": -0.1}, ">= 0"),
    ("crop", {"scale": (0.0, 1.0)}, "0 < low <= high <= 1"),
    ("crop", {"scale": (0.5, 0.2)}, "0 < low <= high <= 1"),
    ("crop", {"scale": (0.1, 1.5)}, "0 < low <= high <= 1"),
    ("crop", {"scale": 0.5}, "0 < low <= high <= 1"),
    ("crop", {"ratio": (2.0, 1.0)}, "0 < low <= high"),
    ("blur", {"sigma": (0.0, 1.0)}, "0 < low <= high"),
    ("cutout", {"side_fraction": 0.0}, "(0, 1]"),
    ("cutout", {"fill": 2.0}, "[0, 1]"),
    ("color_jitter", {"hue": 0.7}, "[0, 0.5]"),
    ("color_jitter", {"random_order": "yes"}, "true or false"),
])
def test_bad_values_say_what_is_allowed(op, params, allowed):
    with pytest.raises(ConfigError) as error:
        validate_pipeline([OpSpec("crop"), OpSpec(op, params)], key="augment.pipeline")
    message = str(error.value)
    name = next(iter(params))
    assert f"augment.pipeline[1].{name}" in message and allowed in message


def test_ops_reject_a_bad_probability_when_called_directly():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        aug.hflip(random_images(2), seeded(), p=2.0)


# ---------------------------------------------------------------------------------------------
# render_preview
# ---------------------------------------------------------------------------------------------


def test_render_preview_writes_a_png_grid(tmp_path):
    images = (random_images(10) * 255).to(torch.uint8)
    path = render_preview(images, AugmentConfig(), seeded(), tmp_path / "sub" / "preview.png",
                          n_views=2, max_images=5, upscale=4)
    assert path.exists()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        # make_grid: 3 columns (original, 2 views) by 5 rows of 128 px tiles, 2 px padding, under the
        # header band that names the columns.
        tile = 32 * 4 + 2
        top = preview.PREVIEW_HEADER_PX
        assert image.size == (3 * tile + 2, 5 * tile + 2 + top)
        # The first tile is the original image, nearest-upscaled (rounded to uint8).
        pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    original = images[0].repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)
    assert (pixels[:, top + 2:top + 130, 2:130].int() - original.int()).abs().max() <= 1
    # The header has text (dark pixels) over each column, nothing dark between the header lines' columns.
    header = pixels[:, :top].int().sum(0)
    assert all((header[:, c * tile:(c + 1) * tile] < 300).any() for c in range(3))


def test_preview_labels_say_what_made_each_view():
    assert preview.preview_labels(AugmentConfig(), 2) == [
        ("original", ""), ("view 1", "crop+hflip+color"), ("view 2", "crop+hflip+color")]
    figure5 = AugmentConfig(protocol="asymmetric", base_crop=True, pipeline=[OpSpec("crop"), OpSpec("color")])
    assert preview.preview_labels(figure5, 2) == [("original", ""), ("view 1", "base crop, crop+color"),
                                              ("view 2", "base crop")]


# ---------------------------------------------------------------------------------------------
# Device: the ops run where the batch lives, drawing from a generator on that device.
# ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_runs_on_cuda(name):
    images = random_images().cuda()
    generator = torch.Generator(device="cuda").manual_seed(0)
    out = OPS[name](images, generator)
    assert out.device == images.device and out.shape == images.shape
    assert out.min() >= 0 and out.max() <= 1
    again = OPS[name](images, torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(out, again)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_colour_on_cuda_matches_the_eager_ops():
    images = random_images(batch=96).cuda()
    config = AugmentConfig(pipeline=[OpSpec("color", {"jitter_prob": 1.0, "drop_prob": 0.3})])
    eager = make_views(images, config, torch.Generator(device="cuda").manual_seed(0), n_views=1)[0]
    config.compile = "on"
    compiled = make_views(images, config, torch.Generator(device="cuda").manual_seed(0), n_views=1)[0]
    assert torch.allclose(compiled, eager, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_compiling_the_colour_kernel_prints_no_cuda_notice(tmp_path):
    """On a CPU machine with a CUDA toolkit installed (this project's), Inductor's first compile logs
    "No CUDA runtime is found, using CUDA_HOME=..." in the middle of a user's output; the engine holds it
    back. A fresh Inductor cache, so that the kernel really compiles."""
    import os
    import subprocess
    import sys

    code = ("import torch; from simclr_core.config import AugmentConfig; from simclr_core.augmentations import "
            "make_views; make_views(torch.rand(8, 3, 32, 32), AugmentConfig(compile='on'), "
            "torch.Generator().manual_seed(0)); print('views made')")
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and "views made" in done.stdout, done.stderr[-2000:]
    assert "CUDA" not in done.stderr, done.stderr[-2000:]
