"""Batched SimCLR augmentations: every op in the paper, with random parameters drawn per sample.

Each op takes a float batch (B, 3, H, W) in [0, 1] on any device and a `torch.Generator` on that same
device, and returns a new batch of the same shape, dtype and device, in [0, 1]. Parameters are drawn
independently for every sample in one call (torchvision.transforms.v2 draws one set per call, which
would give every image in a batch the same crop). Defaults follow google-research/simclr `data_util.py`
(paper Appendix A); the ops the paper names without parameters (cutout, rotate, noise, sobel; Section 3.1,
Figure 4) take the values noted at each op.

All random numbers come from the generator passed in, so one seed gives bit-identical views on CPU.
Ops loop over a handful of op kinds, never over samples.

Speed (2-core dev VM, torch 2.14.1 CPU, 512 random 32x32 images): the colour distortion at s = 0.5
takes 11.6 ms eagerly on one thread and 4.7 ms as fused_color's compiled kernel (augment.compile, which
make_views applies; 7.2 and 2.5 ms on two threads). The default view (crop + hflip + color) with the
kernel runs at 63-83k views/s on two threads; torchvision's per-image PIL transforms of the same
recipe in a 2-worker DataLoader, 3.6-4.9k (benchmarks/RESULTS.md). Many in-place ops below avoid fresh
multi-megabyte tensors: under glibc's default malloc each one page-faults anew (trainer.keep_freed_memory).
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from simclr_core.config import COMPILE_MODES, AugmentConfig, ConfigError, OpSpec

# ITU-R 601-2 luma weights as torchvision's rgb_to_grayscale and TF's rgb_to_grayscale use them
# (0.2989, not 0.299), so contrast and saturation match torchvision to float rounding.
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)

# Attempts at a crop box that fits before falling back to a centre crop, as torchvision.
_CROP_ATTEMPTS = 10

# Jitter kinds in data_util's fixed order (color_jitter_nonrand): brightness, contrast, saturation, hue.
_JITTER_KINDS = 4


# --------------------------------------------------------------------------------------------------
# Per-sample building blocks: factors are (B,) tensors, one value per image.
# --------------------------------------------------------------------------------------------------


def _per_sample(values: Tensor, images: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1) in the images' dtype, to broadcast one value per image."""
    return values.to(images.dtype).view(-1, 1, 1, 1)


def _bernoulli(batch: int, p: float, generator: torch.Generator, device: torch.device) -> Tensor:
    """(B,) bool: which samples an op with probability p applies to. Always draws B numbers so the
    generator stream does not depend on p (changing p=0 to p=1 changes no other op's draws)."""
    return torch.rand(batch, generator=generator, device=device) < p


def _uniform(batch: int, low: float, high: float, generator: torch.Generator,
             device: torch.device) -> Tensor:
    return low + (high - low) * torch.rand(batch, generator=generator, device=device)


def _transform_chosen(images: Tensor, chosen: Tensor, transform: Callable[[Tensor], Tensor]) -> Tensor:
    """A copy of images with `transform` applied to the samples where `chosen` (B,) is True.

    Gathers the chosen samples instead of computing on all and selecting with torch.where: the
    unchosen ones cost nothing, and bool-mask ops on full batches are slow on CPU.
    """
    index = torch.nonzero(chosen).squeeze(1)
    if index.numel() == images.shape[0]:
        # Every sample chosen (p = 1, e.g. sobel in Figure 5): no gather or scatter. contiguous() because a
        # transform may return an expanded view, which later in-place ops could not write to.
        return transform(images).contiguous()
    result = images.clone()
    if index.numel():
        result.index_copy_(0, index, transform(images.index_select(0, index)))
    return result


def rgb_to_gray(images: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma."""
    return luma(*images.unbind(dim=1)).unsqueeze(1)


def luma(red: Tensor, green: Tensor, blue: Tensor) -> Tensor:
    """Luma of separate channel tensors (also fused_color's, which keeps channels apart)."""
    return GRAY_WEIGHTS[0] * red + GRAY_WEIGHTS[1] * green + GRAY_WEIGHTS[2] * blue


def _blend(images: Tensor, other: Tensor, factors: Tensor) -> Tensor:
    # torchvision's _blend, per sample: factor * image + (1 - factor) * other, clamped. `other` is
    # (B, 1, 1, 1) or (B, 1, H, W), so (1 - factor) * other is cheap; in-place add and clamp save
    # allocations (a fused addcmul with these broadcasts measured slower on CPU).
    ratio = _per_sample(factors, images)
    return (images * ratio).add_((1.0 - ratio) * other).clamp_(0.0, 1.0)


def adjust_brightness(images: Tensor, factors: Tensor) -> Tensor:
    """Scale each image by its factor (torchvision adjust_brightness, data_util simclrv2 brightness)."""
    # torchvision blends with black: factor * image + (1 - factor) * 0, which is this product exactly.
    return (images * _per_sample(factors, images)).clamp_(0.0, 1.0)


def adjust_contrast(images: Tensor, factors: Tensor) -> Tensor:
    """Blend each image with its mean gray level (torchvision adjust_contrast).

    data_util uses tf.image.adjust_contrast, which blends each channel with its own mean; we follow
    torchvision, as the issue asks, so results can be checked against it.
    """
    mean = rgb_to_gray(images).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(images, mean, factors)


def adjust_saturation(images: Tensor, factors: Tensor) -> Tensor:
    """Blend each image with its grayscale version (torchvision adjust_saturation)."""
    return _blend(images, rgb_to_gray(images), factors)


# Per channel R, G, B: the channel's place between min and max as a function of the hue h in sixths
# of a turn: clamp(|h - 3| - 1, 0, 1) for red, clamp(2 - |h - centre|, 0, 1) for green (centre 2) and
# blue (centre 4); e.g. red is 1 for h in [0, 1] and [5, 6).
HUE_CENTRES = (3.0, 2.0, 4.0)


def adjust_hue(images: Tensor, shifts: Tensor) -> Tensor:
    """Rotate each image's hue by its shift in [-0.5, 0.5] turns (torchvision adjust_hue).

    Equal to RGB -> HSV, hue + shift mod 1, HSV -> RGB, but fused: the round trip keeps each pixel's
    max and min, so only the hue is computed, and each channel comes back as
    min + (max - min) * place(hue) with the piecewise-linear places above. That is about half the
    elementwise passes of torchvision's two conversions, which matters on a 2-core CPU; it matches
    torchvision.transforms.functional.adjust_hue to 1e-6.
    """
    # In-place ops wherever a buffer is ours: on the dev VM a fresh multi-megabyte result costs more
    # than the arithmetic (glibc hands large blocks back to the OS, so each one page-faults anew).
    red, green, blue = images.unbind(dim=1)
    max_channel = torch.maximum(red, green)
    max_channel = torch.maximum(max_channel, blue, out=max_channel)
    min_channel = torch.minimum(red, green)
    min_channel = torch.minimum(min_channel, blue, out=min_channel)
    chroma = max_channel - min_channel
    # Which channel is the max, as 0/1 floats: 1 - sign(max - c) is 1 exactly where c is the max.
    # Arithmetic, not eq/where: on CPU those bool ops run 5-25x slower than float ones (torch 2.14).
    # Where two channels tie for the max, both hue formulas give the same hue, so any pick is right;
    # red is picked over green and green over blue, torchvision's order.
    red_is_max = (max_channel - red).sign_().neg_().add_(1.0)
    not_red = 1.0 - red_is_max
    green_is_max = (max_channel - green).sign_().neg_().add_(1.0).mul_(not_red)
    blue_is_max = not_red.sub_(green_is_max)
    # Hue in sixths of a turn: sector start (0, 2, 4 for red, green, blue max) + (next - previous) / chroma.
    hue_sixths = (green - blue).mul_(red_is_max)
    hue_sixths.addcmul_(green_is_max, blue - red).addcmul_(blue_is_max, red - green)
    # Gray pixels (chroma 0) have numerator 0 and no hue; the floor only avoids 0/0.
    hue_sixths.div_(chroma.clamp_min(torch.finfo(images.dtype).tiny))
    hue_sixths.add_(green_is_max, alpha=2.0).add_(blue_is_max, alpha=4.0)
    hue_sixths.add_(6.0 * _per_sample(shifts, images).squeeze(1))
    # Back into [0, 6): x - 6 * floor(x / 6); torch.remainder took 1.0 ms on (512, 32, 32), floor 0.13.
    hue_sixths.sub_(torch.floor(hue_sixths / 6.0).mul_(6.0))

    # One contiguous (B, H, W) pass per channel, written into the output: broadcasting per-channel
    # constants over (B, 3, H, W) measured 1.5x slower on CPU.
    adjusted = torch.empty_like(images)
    for channel, centre in enumerate(HUE_CENTRES):
        place = (hue_sixths - centre).abs_()
        place = place.sub_(1.0) if channel == 0 else place.neg_().add_(2.0)
        torch.addcmul(min_channel, chroma, place.clamp_(0.0, 1.0), out=adjusted[:, channel])
    # min + (max - min) * 1 can round one ulp past max.
    return adjusted.clamp_(0.0, 1.0)


def _check_probability(p: float) -> None:
    # Ops are also called directly (not through validate_pipeline); a bad p would silently mean 0 or 1.
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability p must be in [0, 1], got {p!r}")


# --------------------------------------------------------------------------------------------------
# The ops. Signature: op(images, generator, *, params) -> images.
# --------------------------------------------------------------------------------------------------


def crop(images: Tensor, generator: torch.Generator, *, scale: tuple[float, float] = (0.08, 1.0),
         ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Tensor:
    """Random resized crop, resized back to the input size (paper Section 3.1, Appendix A;
    data_util distorted_bounding_box_crop with area (0.08, 1.0), aspect (3/4, 4/3)).

    Per sample: area fraction U(scale), aspect ratio log-uniform in `ratio`, retried up to 10 times
    until the box fits, else a centre crop (torchvision's RandomResizedCrop rule). Boxes are not
    rounded to whole pixels: the bilinear resampler handles sub-pixel boxes, and scale=(1, 1),
    ratio=(1, 1) is then the exact identity on square images.

    Resampling is one F.grid_sample (bilinear, border padding) for the whole batch. On the 2-core dev
    CPU, for 512 CIFAR images (2 threads), affine_grid + grid_sample took 5.0 ms against 8.7 ms for
    torchvision.ops.roi_align (same boxes, same values to 5e-6) and 18.6 ms for per-sample
    interpolation matrices (bmm); separable row gathers + lerp took 13 ms against grid_sample's 8.4 on
    one thread. Filling the grid directly instead of with affine_grid then took the crop from 9.6 to
    4.4 ms on one thread.
    """
    batch, _, height, width = images.shape
    device = images.device
    area_low, area_high = scale
    log_ratio_low, log_ratio_high = math.log(ratio[0]), math.log(ratio[1])
    # (B, attempts): all attempts drawn at once; the first that fits is used.
    area = height * width * (area_low + (area_high - area_low) * torch.rand(
        batch, _CROP_ATTEMPTS, generator=generator, device=device))
    aspect = torch.exp(log_ratio_low + (log_ratio_high - log_ratio_low) * torch.rand(
        batch, _CROP_ATTEMPTS, generator=generator, device=device))
    box_width = torch.sqrt(area * aspect)
    box_height = torch.sqrt(area / aspect)
    fits = (box_width <= width) & (box_height <= height)
    first_fit = fits.to(torch.uint8).argmax(dim=1, keepdim=True)
    box_width = box_width.gather(1, first_fit).squeeze(1)
    box_height = box_height.gather(1, first_fit).squeeze(1)
    # Fallback centre crop: the whole image, cut to the nearest allowed aspect ratio.
    input_ratio = width / height
    if input_ratio < ratio[0]:
        fallback_width, fallback_height = float(width), width / ratio[0]
    elif input_ratio > ratio[1]:
        fallback_width, fallback_height = height * ratio[1], float(height)
    else:
        fallback_width, fallback_height = float(width), float(height)
    any_fit = fits.any(dim=1)
    box_width = torch.where(any_fit, box_width, torch.full_like(box_width, fallback_width))
    box_height = torch.where(any_fit, box_height, torch.full_like(box_height, fallback_height))
    # Offsets drawn for every sample; the fallback centres instead.
    position = torch.rand(batch, 2, generator=generator, device=device)
    position = torch.where(any_fit.unsqueeze(1), position, torch.full_like(position, 0.5))
    left = position[:, 0] * (width - box_width)
    top = position[:, 1] * (height - box_height)
    # Sampling grid in grid_sample's coordinates: [-1, 1] over the pixel edges (align_corners=False),
    # so output pixel centres (2i + 1)/W - 1 map linearly onto the box [left, left + box_width].
    # The crop is axis-aligned, so x depends only on the column and y only on the row; filling the two
    # planes directly is what F.affine_grid computes, without its batched (H*W x 3) @ (3 x 2) matmul,
    # which took longer on CPU than the sampling itself.
    grid = torch.empty(batch, height, width, 2, device=device, dtype=images.dtype)
    grid[..., 0] = _box_coordinates(left, box_width, width).unsqueeze(1)  # (B, 1, W) over rows
    grid[..., 1] = _box_coordinates(top, box_height, height).unsqueeze(2)  # (B, H, 1) over columns
    # Border padding: the outermost sample points sit up to half a pixel outside the box edge, and
    # zero padding would darken the border of crops that touch the image edge.
    resized = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # Bilinear weights are convex, but rounding can step one ulp outside [0, 1].
    return resized.clamp_(0.0, 1.0)


def _box_coordinates(start: Tensor, length: Tensor, size: int) -> Tensor:
    """(B,) box start and length in pixels -> (B, size) normalised coordinates of the output pixel
    centres inside the box, for grid_sample with align_corners=False."""
    centres = (2 * torch.arange(size, device=start.device, dtype=start.dtype) + 1) / size - 1  # (size,)
    scale = (length / size).unsqueeze(1)
    offset = ((2 * start + length) / size - 1).unsqueeze(1)
    return centres * scale + offset


def _flip(images: Tensor, generator: torch.Generator, p: float, dim: int) -> Tensor:
    _check_probability(p)
    flip = _bernoulli(images.shape[0], p, generator, images.device)
    return _transform_chosen(images, flip, lambda chosen: chosen.flip(dim))


def hflip(images: Tensor, generator: torch.Generator, *, p: float = 0.5) -> Tensor:
    """Horizontal flip with probability p per sample (paper Appendix A, data_util random flip)."""
    return _flip(images, generator, p, dim=-1)


def vflip(images: Tensor, generator: torch.Generator, *, p: float = 0.5) -> Tensor:
    """Vertical flip with probability p per sample (paper Figure 4 lists flip among the spatial ops)."""
    return _flip(images, generator, p, dim=-2)


def rotate(images: Tensor, generator: torch.Generator, *, p: float = 1.0) -> Tensor:
    """Rotate by 90, 180 or 270 degrees, uniformly chosen per sample, with probability p
    (paper Figure 4(e), Section 3.1; the angle set is the paper's {90, 180, 270}).

    Needs square images: a quarter turn of a non-square image changes its shape.
    """
    _check_probability(p)
    batch, _, height, width = images.shape
    if height != width:
        raise ValueError(f"rotate needs square images, got {height}x{width}")
    apply = _bernoulli(batch, p, generator, images.device)
    quarter_turns = torch.randint(1, 4, (batch,), generator=generator, device=images.device)
    # Three subsets, one per angle; rot90 of a whole subset is one strided copy.
    rotated = images.clone()
    for turns in (1, 2, 3):
        index = torch.nonzero(apply & (quarter_turns == turns)).squeeze(1)
        if index.numel():
            rotated.index_copy_(0, index, torch.rot90(images.index_select(0, index), turns, dims=(-2, -1)))
    return rotated


def color_jitter(images: Tensor, generator: torch.Generator, *, strength: float = 1.0, p: float = 0.8,
                 brightness: float | None = None, contrast: float | None = None,
                 saturation: float | None = None, hue: float | None = None,
                 random_order: bool = True) -> Tensor:
    """Colour jitter with strength s, applied with probability p (paper Appendix A, data_util
    color_jitter / color_jitter_rand): brightness, contrast, saturation 0.8*s and hue 0.2*s unless set.

    Factors per sample as torchvision ColorJitter: brightness, contrast and saturation factors
    U(max(0, 1 - x), 1 + x), hue shift U(-hue, hue). With random_order each sample gets its own order
    of the four adjustments (data_util shuffles the order per image); results are clamped after each.
    (`make_views` with augment.compile runs the same draws through `fused_color` instead.)
    """
    draws = _draw_jitter(images, generator, strength=strength, p=p, brightness=brightness,
                         contrast=contrast, saturation=saturation, hue=hue, random_order=random_order)
    return _colour_eager(images, draws, None)


@dataclass
class _JitterDraws:
    apply: Tensor  # (B,) bool: the jitter applies to this sample (probability p)
    factors: list[Tensor]  # brightness, contrast, saturation factors and hue shift, each (B,)
    order: Tensor  # (B, 4) int64: each sample's order of the four kinds
    active: list[bool]  # per kind: its range is not zero (a zero range is the identity)


def _draw_jitter(images: Tensor, generator: torch.Generator, *, strength: float, p: float,
                 brightness: float | None, contrast: float | None, saturation: float | None,
                 hue: float | None, random_order: bool) -> _JitterDraws:
    _check_probability(p)
    batch, device = images.shape[0], images.device
    ranges = [
        0.8 * strength if brightness is None else brightness,
        0.8 * strength if contrast is None else contrast,
        0.8 * strength if saturation is None else saturation,
    ]
    hue_range = 0.2 * strength if hue is None else hue
    apply = _bernoulli(batch, p, generator, device)
    # One factor per kind per sample; drawn for every sample to keep the stream fixed.
    factors = [_uniform(batch, max(0.0, 1.0 - x), 1.0 + x, generator, device) for x in ranges]
    factors.append(_uniform(batch, -hue_range, hue_range, generator, device))
    if random_order:
        order = torch.argsort(torch.rand(batch, _JITTER_KINDS, generator=generator, device=device), dim=1)
    else:
        order = torch.arange(_JITTER_KINDS, device=device).expand(batch, _JITTER_KINDS)
    return _JitterDraws(apply, factors, order, [x > 0 for x in ranges] + [hue_range > 0])


def _jitter_eager(images: Tensor, draws: _JitterDraws) -> Tensor:
    adjusts = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
    jittered = images.clone()
    # Loop over the 4 positions and 4 kinds, not over samples: each pass adjusts the subset of
    # samples whose order puts that kind at that position. (Concatenating the groups at each
    # position and scattering once at the end measured no faster.) An inactive kind is skipped:
    # it is the identity, and skipping saves the costly hue pass.
    for position in range(_JITTER_KINDS):
        for kind in range(_JITTER_KINDS):
            if not draws.active[kind]:
                continue
            index = torch.nonzero(draws.apply & (draws.order[:, position] == kind)).squeeze(1)
            if index.numel():
                adjusted = adjusts[kind](jittered.index_select(0, index), draws.factors[kind].index_select(0, index))
                jittered.index_copy_(0, index, adjusted)
    return jittered


def _jitter_slots(draws: _JitterDraws) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The draws as fused_color.color_kernel's parameters: (6, B) factor, contrast and saturation
    per blend slot (kinds before the sample's hue position, then after it; unused slots factor 1),
    hue_on (B,) and shift (B,)."""
    from simclr_core.fused_color import SLOTS

    order = draws.order
    hue_kind = _JITTER_KINDS - 1
    hue_position = (order == hue_kind).to(torch.uint8).argmax(dim=1)  # (B,)
    identity = torch.full_like(hue_position, -1)
    kinds = [torch.where(hue_position > slot, order[:, slot], identity) for slot in range(SLOTS)]
    for slot in range(SLOTS):
        position = hue_position + 1 + slot
        kind = order.gather(1, position.clamp(max=_JITTER_KINDS - 1).unsqueeze(1)).squeeze(1)
        kinds.append(torch.where(position < _JITTER_KINDS, kind, identity))
    # (6, B): 0 brightness, 1 contrast, 2 saturation, -1 identity (also every slot of an unjittered
    # sample). Inactive kinds keep their place: their factor is exactly 1, the identity.
    slot_kinds = torch.where(draws.apply, torch.stack(kinds), -1)
    blend_factors = torch.stack(draws.factors[:3])  # (3, B)
    factor = torch.where(slot_kinds >= 0, blend_factors.gather(0, slot_kinds.clamp(min=0)), 1.0)
    hue_on = draws.apply & draws.active[hue_kind]
    return factor, slot_kinds == 1, slot_kinds == 2, hue_on, draws.factors[hue_kind]


def color_drop(images: Tensor, generator: torch.Generator, *, p: float = 0.2) -> Tensor:
    """Convert to grayscale (replicated to 3 channels) with probability p per sample
    (paper Appendix A, data_util to_grayscale with p = 0.2)."""
    _check_probability(p)
    return _drop_eager(images, _bernoulli(images.shape[0], p, generator, images.device))


def _drop_eager(images: Tensor, drop: Tensor) -> Tensor:
    # The luma weights sum to 0.9999, so gray stays in [0, 1] with no clamp.
    return _transform_chosen(images, drop, lambda chosen: rgb_to_gray(chosen).expand_as(chosen))


def color(images: Tensor, generator: torch.Generator, *, strength: float = 1.0, jitter_prob: float = 0.8,
          drop_prob: float = 0.2) -> Tensor:
    """The paper's colour distortion (Appendix A, data_util random_color_jitter): colour jitter of
    strength s with probability jitter_prob, then colour drop with probability drop_prob.
    ImageNet uses s = 1.0, CIFAR-10 s = 0.5 (Appendix B.9); Table 1 ablates s."""
    return _colour_eager(images, *_draw_color(images, generator, strength=strength, jitter_prob=jitter_prob,
                                              drop_prob=drop_prob))


def _draw_color(images: Tensor, generator: torch.Generator, *, strength: float, jitter_prob: float,
                drop_prob: float) -> tuple[_JitterDraws, Tensor]:
    # color_jitter's defaults but strength and p, then the drop draw.
    draws = _draw_jitter(images, generator, **{**_defaults("color_jitter"), "strength": strength, "p": jitter_prob})
    _check_probability(drop_prob)
    return draws, _bernoulli(images.shape[0], drop_prob, generator, images.device)


def _colour_eager(images: Tensor, draws: _JitterDraws, drop: Tensor | None) -> Tensor:
    jittered = _jitter_eager(images, draws)
    return jittered if drop is None else _drop_eager(jittered, drop)


# --------------------------------------------------------------------------------------------------
# The colour ops through fused_color's compiled kernel (augment.compile): the same draws from the
# generator as the eager ops above, so the views agree with theirs to float rounding.
# --------------------------------------------------------------------------------------------------

# Op name -> its draws as (jitter draws, drop mask or None), from the op's full keyword parameters.
_COLOUR_DRAWS: dict[str, Callable[..., tuple[_JitterDraws, Tensor | None]]] = {
    "color_jitter": lambda images, generator, **params: (_draw_jitter(images, generator, **params), None),
    "color": _draw_color,
}


def _fused_colour(images: Tensor, draws: _JitterDraws, drop: Tensor | None, required: bool) -> Tensor:
    from simclr_core.fused_color import compiled_color

    kernel_drop = drop if drop is not None else torch.zeros_like(draws.apply)
    result = compiled_color(images, *_jitter_slots(draws), kernel_drop, required=required)
    # None: this process cannot compile; the eager ops on the same draws.
    return result if result is not None else _colour_eager(images, draws, drop)


def cutout(images: Tensor, generator: torch.Generator, *, side_fraction: float = 0.5, fill: float = 0.0,
           p: float = 1.0) -> Tensor:
    """Erase one square per image with probability p (paper Figure 4(f); DeVries & Taylor 2017).

    The square's side is side_fraction of the shorter image side; its centre is uniform over the
    image and the square is clipped at the borders, as in DeVries & Taylor's reference code, so squares
    near an edge cover less. The paper does not publish its cutout size; 0.5 is DeVries & Taylor's
    CIFAR-10 choice (16 of 32 pixels).
    """
    _check_probability(p)
    batch, _, height, width = images.shape
    device = images.device
    side = max(1, round(side_fraction * min(height, width)))
    apply = _bernoulli(batch, p, generator, device)
    centre_row = torch.randint(0, height, (batch, 1), generator=generator, device=device)
    centre_col = torch.randint(0, width, (batch, 1), generator=generator, device=device)
    rows = torch.arange(height, device=device).view(1, height)
    cols = torch.arange(width, device=device).view(1, width)
    # Half-open [centre - side//2, centre - side//2 + side): exactly `side` pixels when unclipped.
    top, left = centre_row - side // 2, centre_col - side // 2
    in_rows = ((rows >= top) & (rows < top + side) & apply.view(-1, 1)).to(images.dtype)  # (B, H)
    in_cols = ((cols >= left) & (cols < left + side)).to(images.dtype)  # (B, W)
    # A 0/1 float mask and a multiply rather than masked_fill, which is slow on CPU; x * 1 + 0 and
    # x * 0 + fill are exact.
    erase = (in_rows.unsqueeze(2) * in_cols.unsqueeze(1)).unsqueeze(1)  # (B, 1, H, W)
    erased = images * (1.0 - erase)
    return erased.add_(erase, alpha=fill) if fill else erased


def blur(images: Tensor, generator: torch.Generator, *, sigma: tuple[float, float] = (0.1, 2.0),
         p: float = 0.5) -> Tensor:
    """Gaussian blur with probability p, sigma U(sigma) per sample (paper Appendix A, data_util
    random_blur: p = 0.5 in the ImageNet recipe, not used for CIFAR-10).

    Kernel size as data_util: radius = (H // 10) // 2, kernel = 2 * radius + 1 (3 for 32 px, 23 for
    224 px; images under 20 px are left unchanged). data_util pads with zeros ('SAME'); we reflect, so
    the image borders do not darken. Separable per-sample kernels run as one grouped convolution
    per axis; unblurred samples get a unit impulse kernel, which is the exact identity.
    """
    _check_probability(p)
    batch, channels, height, width = images.shape
    device = images.device
    radius = (height // 10) // 2
    apply = _bernoulli(batch, p, generator, device)
    sigmas = _uniform(batch, sigma[0], sigma[1], generator, device)
    if radius == 0 or min(height, width) <= radius:
        return images.clone()
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernels = torch.exp(-offsets.square() / (2.0 * sigmas.square().unsqueeze(1)))  # (B, K)
    kernels = kernels / kernels.sum(dim=1, keepdim=True)
    impulse = (offsets == 0).to(kernels.dtype).expand_as(kernels)
    kernels = torch.where(apply.unsqueeze(1), kernels, impulse).to(images.dtype)
    # One kernel per (sample, channel) group: (B*3, 1, K, 1) vertically, (B*3, 1, 1, K) horizontally.
    kernels = kernels.repeat_interleave(channels, dim=0)
    size = 2 * radius + 1
    stacked = images.reshape(1, batch * channels, height, width)
    stacked = F.pad(stacked, (0, 0, radius, radius), mode="reflect")
    stacked = F.conv2d(stacked, kernels.view(-1, 1, size, 1), groups=batch * channels)
    stacked = F.pad(stacked, (radius, radius, 0, 0), mode="reflect")
    stacked = F.conv2d(stacked, kernels.view(-1, 1, 1, size), groups=batch * channels)
    return stacked.view(batch, channels, height, width).clamp_(0.0, 1.0)


def noise(images: Tensor, generator: torch.Generator, *, std: float = 0.1, p: float = 1.0) -> Tensor:
    """Additive Gaussian noise N(0, std^2) per pixel with probability p, then clamped to [0, 1]
    (paper Figure 4(h)). The paper does not publish its std; 0.1 is our choice, to ablate."""
    _check_probability(p)
    apply = _bernoulli(images.shape[0], p, generator, images.device)
    gaussian = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return gaussian.mul_(std * _per_sample(apply, images)).add_(images).clamp_(0.0, 1.0)


def sobel(images: Tensor, generator: torch.Generator, *, p: float = 1.0) -> Tensor:
    """Sobel edge magnitude of the grayscale image with probability p (paper Figure 4(i)).

    The magnitude is divided by its per-image maximum so it fills [0, 1] (a flat image gives zeros),
    and replicated to 3 channels so the encoder's input stays RGB-shaped. Borders are replicated, so
    the frame of the image is not an edge.
    """
    _check_probability(p)
    apply = _bernoulli(images.shape[0], p, generator, images.device)
    return _transform_chosen(images, apply, lambda chosen: _sobel_edges(chosen).expand_as(chosen))


def _sobel_edges(images: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) Sobel gradient magnitude of the luma, divided by its per-image max."""
    gray = F.pad(rgb_to_gray(images), (1, 1, 1, 1), mode="replicate")  # (B, 1, H + 2, W + 2)
    # The 3x3 Sobel kernels as separable differences and [1, 2, 1] smoothing, written out rather than
    # convolved: equal neighbours subtract to exactly 0, so flat regions stay 0 and a flat image is not
    # rounding noise stretched to [0, 1] by the per-image normalisation.
    across = gray[..., :, 2:] - gray[..., :, :-2]  # (B, 1, H + 2, W)
    down = gray[..., 2:, :] - gray[..., :-2, :]  # (B, 1, H, W + 2)
    gradient_x = (across[..., :-2, :] + across[..., 2:, :]).add_(across[..., 1:-1, :], alpha=2.0)
    gradient_y = (down[..., :, :-2] + down[..., :, 2:]).add_(down[..., :, 1:-1], alpha=2.0)
    magnitude = gradient_x.mul_(gradient_x).addcmul_(gradient_y, gradient_y).sqrt_()
    peak = magnitude.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return magnitude.div_(peak.clamp_min(torch.finfo(images.dtype).tiny)).clamp_(0.0, 1.0)


OPS: dict[str, Callable[..., Tensor]] = {
    "crop": crop,
    "hflip": hflip,
    "vflip": vflip,
    "rotate": rotate,
    "color_jitter": color_jitter,
    "color_drop": color_drop,
    "color": color,
    "cutout": cutout,
    "blur": blur,
    "noise": noise,
    "sobel": sobel,
}

# Ops whose `strength` defaults to the run's color_strength (AugmentConfig) rather than the op's 1.0.
_STRENGTH_OPS = {"color", "color_jitter"}


# --------------------------------------------------------------------------------------------------
# Pipeline validation: each parameter name maps to its check and what is allowed.
# --------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    # bool is an int subclass; `p: true` in a study file is a mistake, not 1.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_number(v) for v in value)


_PARAM_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "p": (lambda v: _is_number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    "jitter_prob": (lambda v: _is_number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    "drop_prob": (lambda v: _is_number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    "strength": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "brightness": (lambda v: v is None or (_is_number(v) and v >= 0), "null or a number >= 0"),
    "contrast": (lambda v: v is None or (_is_number(v) and v >= 0), "null or a number >= 0"),
    "saturation": (lambda v: v is None or (_is_number(v) and v >= 0), "null or a number >= 0"),
    "hue": (lambda v: v is None or (_is_number(v) and 0 <= v <= 0.5), "null or a number in [0, 0.5]"),
    "random_order": (lambda v: isinstance(v, bool), "true or false"),
    "scale": (lambda v: _is_pair(v) and 0 < v[0] <= v[1] <= 1, "a pair [low, high] with 0 < low <= high <= 1"),
    "ratio": (lambda v: _is_pair(v) and 0 < v[0] <= v[1], "a pair [low, high] with 0 < low <= high"),
    "sigma": (lambda v: _is_pair(v) and 0 < v[0] <= v[1], "a pair [low, high] with 0 < low <= high"),
    "side_fraction": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "fill": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "std": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
}


def op_params(name: str) -> list[str]:
    """The keyword parameters an op accepts, from its signature."""
    return list(_defaults(name))


@functools.cache
def _defaults(name: str) -> dict[str, Any]:
    """An op's keyword parameters and their defaults, from its signature (defined there only)."""
    return {param.name: param.default for param in inspect.signature(OPS[name]).parameters.values()
            if param.name not in ("images", "generator")}


def validate_pipeline(pipeline: list[OpSpec], key: str = "augment.pipeline") -> None:
    """Check op names, parameter names and values; raise ConfigError naming `key[index]` and what is
    allowed. Parameter names come from each op's signature, so a new op needs no entry here beyond
    a check in _PARAM_CHECKS for any new parameter name."""
    if not isinstance(pipeline, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of ops, got {type(pipeline).__name__}")
    for index, spec in enumerate(pipeline):
        where = f"{key}[{index}]"
        if not isinstance(spec, OpSpec):
            raise ConfigError(f"{where}: expected an OpSpec, got {type(spec).__name__}")
        if spec.op not in OPS:
            raise ConfigError(f"{where}: unknown augmentation {spec.op!r}; valid names: "
                              f"{', '.join(sorted(OPS))}")
        if not isinstance(spec.params, dict):
            raise ConfigError(f"{where} ({spec.op}): params must be a mapping, got "
                              f"{type(spec.params).__name__}")
        valid = op_params(spec.op)
        for name, value in spec.params.items():
            if name not in valid:
                raise ConfigError(f"{where} ({spec.op}): unknown parameter {name!r}; {spec.op} takes "
                                  f"{', '.join(valid)}")
            check, allowed = _PARAM_CHECKS[name]
            if not check(value):
                raise ConfigError(f"{where}.{name} ({spec.op}): {value!r} is not allowed; expected "
                                  f"{allowed}")


# --------------------------------------------------------------------------------------------------
# Pipelines and views.
# --------------------------------------------------------------------------------------------------


def _check_images(images: Tensor) -> None:
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"expected float images in [0, 1], got {images.dtype}; convert uint8 with "
                        f"images.float() / 255")


def apply_pipeline(images: Tensor, pipeline: list[OpSpec], generator: torch.Generator, *,
                   color_strength: float | None = None, compile: str = "off") -> Tensor:
    """Apply the ops in order; `color_strength` is the strength for color/color_jitter entries that
    do not set one (None: the op's own default, 1.0).

    compile (AugmentConfig.compile): "off" runs every op eagerly; "auto" runs color and color_jitter
    through fused_color's compiled kernel on CPU (falling back to the eager ops, with one warning,
    where torch.compile cannot work), "on" on any device, and raises where it cannot compile.
    """
    _check_images(images)
    validate_pipeline(pipeline)
    if compile not in COMPILE_MODES:
        raise ConfigError(f"augment.compile: {compile!r} is not allowed; expected one of "
                          f"{', '.join(COMPILE_MODES)}")
    fused = _uses_kernel(compile, images.device)
    for spec in pipeline:
        params = dict(spec.params)
        if spec.op in _STRENGTH_OPS and color_strength is not None:
            params.setdefault("strength", color_strength)
        if fused and spec.op in _COLOUR_DRAWS:
            draws, drop = _COLOUR_DRAWS[spec.op](images, generator, **{**_defaults(spec.op), **params})
            images = _fused_colour(images, draws, drop, required=compile == "on")
        else:
            images = OPS[spec.op](images, generator, **params)
    return images


def _uses_kernel(compile: str, device: torch.device) -> bool:
    # auto leaves CUDA eager: there the eager ops are already fast, and the compiled kernel has only
    # been measured on CPU.
    return compile == "on" or (compile == "auto" and device.type == "cpu")


def colour_path(config: AugmentConfig, device: torch.device) -> str:
    """How make_views has been running `config`'s colour ops on `device`, for the run's record:
    "compiled", "eager", "eager (compiling failed: ...)" or "none" (no colour op in the pipeline)."""
    from simclr_core.fused_color import compile_failure

    if not any(spec.op in _COLOUR_DRAWS for spec in config.pipeline):
        return "none"
    if not _uses_kernel(config.compile, device):
        return "eager"
    failure = compile_failure(device)
    return f"eager (compiling failed: {failure})" if failure else "compiled"


def make_views(images: Tensor, config: AugmentConfig, generator: torch.Generator,
               n_views: int = 2) -> list[Tensor]:
    """n_views augmented views of a float batch (B, 3, H, W) in [0, 1].

    symmetric: every view gets the pipeline with its own draws (paper Section 2.1, Algorithm 1).
    asymmetric: the paper's Figure 5 protocol (Section 3.1): the pipeline on the first view only, the
    others left as identity; with base_crop, every image first gets one random resized crop, shared
    by all its views, before the target ops.
    """
    _check_images(images)
    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    if config.protocol == "symmetric":
        return [apply_pipeline(images, config.pipeline, generator, color_strength=config.color_strength,
                               compile=config.compile) for _ in range(n_views)]
    if config.protocol == "asymmetric":
        base = crop(images, generator) if config.base_crop else images
        first = apply_pipeline(base, config.pipeline, generator, color_strength=config.color_strength,
                               compile=config.compile)
        # Clones, so a caller that edits one view in place cannot change the others or the input.
        return [first] + [base.clone() for _ in range(n_views - 1)]
    raise ConfigError(f"augment.protocol: {config.protocol!r} is not allowed; expected one of "
                      f"asymmetric, symmetric")


def render_preview(images: Tensor, config: AugmentConfig, generator: torch.Generator, path: str | Path,
                   n_views: int = 2, max_images: int = 8, upscale: int = 4) -> Path:
    """Write a PNG grid: one row per image, columns original, view 1 .. view n_views, each
    nearest-upscaled `upscale` times so 32 px images are visible. Accepts uint8 or float images."""
    from torchvision.utils import make_grid, save_image

    images = images[:max_images]
    if not images.is_floating_point():
        images = images.float() / 255.0
    views = make_views(images, config, generator, n_views=n_views)
    # (B, 1 + n_views, 3, H, W) -> rows of [original, view 1, ...], one row per image.
    tiles = torch.stack([images] + views, dim=1).flatten(0, 1)
    tiles = F.interpolate(tiles.float(), scale_factor=upscale, mode="nearest")
    grid = make_grid(tiles, nrow=1 + n_views, padding=2, pad_value=1.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    return path
