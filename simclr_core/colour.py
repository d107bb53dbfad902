"""The paper's colour distortion (Appendix A, data_util.py): colour jitter, colour drop and their
composition `color`, as batched per-sample ops, with the luma and per-image adjustments they are made of.

Each op is split in two: a draw step that takes every random number from the generator (`_draw_jitter`,
`_draw_color`) and an apply step (`_colour_eager`). `augmentations.make_views` can run the same draws
through `fused_color`'s compiled kernel instead of the eager apply (augment.compile), so one seed gives
the same views on both paths, to float rounding; `_jitter_slots` lays the draws out as that kernel's
parameters. This module imports nothing from the rest of the engine but `per_sample`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import Tensor

from simclr_core.per_sample import bernoulli, broadcast, check_probability, transform_chosen, uniform

# ITU-R 601-2 luma weights as torchvision's rgb_to_grayscale and TF's rgb_to_grayscale use them
# (0.2989, not 0.299), so contrast and saturation match torchvision to float rounding.
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)

# Jitter kinds in data_util's fixed order (color_jitter_nonrand): brightness, contrast, saturation, hue.
_JITTER_KINDS = 4

# Blend slots before and after the hue rotation in fused_color's kernel: with four kinds in any
# order, at most three of the other kinds come before hue and at most three after it.
SLOTS = 3


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
    ratio = broadcast(factors, images)
    return (images * ratio).add_((1.0 - ratio) * other).clamp_(0.0, 1.0)


def adjust_brightness(images: Tensor, factors: Tensor) -> Tensor:
    """Scale each image by its factor (torchvision adjust_brightness, data_util simclrv2 brightness)."""
    # torchvision blends with black: factor * image + (1 - factor) * 0, which is this product exactly.
    return (images * broadcast(factors, images)).clamp_(0.0, 1.0)


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
    hue_sixths.add_(6.0 * broadcast(shifts, images).squeeze(1))
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
    check_probability(p)
    batch, device = images.shape[0], images.device
    ranges = [
        0.8 * strength if brightness is None else brightness,
        0.8 * strength if contrast is None else contrast,
        0.8 * strength if saturation is None else saturation,
    ]
    hue_range = 0.2 * strength if hue is None else hue
    apply = bernoulli(batch, p, generator, device)
    # One factor per kind per sample; drawn for every sample to keep the stream fixed.
    factors = [uniform(batch, max(0.0, 1.0 - x), 1.0 + x, generator, device) for x in ranges]
    factors.append(uniform(batch, -hue_range, hue_range, generator, device))
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
    check_probability(p)
    return _drop_eager(images, bernoulli(images.shape[0], p, generator, images.device))


def _drop_eager(images: Tensor, drop: Tensor) -> Tensor:
    # The luma weights sum to 0.9999, so gray stays in [0, 1] with no clamp.
    return transform_chosen(images, drop, lambda chosen: rgb_to_gray(chosen).expand_as(chosen))


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
    draws = _draw_jitter(images, generator, **{**_JITTER_DEFAULTS, "strength": strength, "p": jitter_prob})
    check_probability(drop_prob)
    return draws, bernoulli(images.shape[0], drop_prob, generator, images.device)


def _colour_eager(images: Tensor, draws: _JitterDraws, drop: Tensor | None) -> Tensor:
    jittered = _jitter_eager(images, draws)
    return jittered if drop is None else _drop_eager(jittered, drop)


# color_jitter's keyword defaults, from its signature (defined there only), for `color`'s jitter.
_JITTER_DEFAULTS = {param.name: param.default for param in inspect.signature(color_jitter).parameters.values()
                    if param.name not in ("images", "generator")}
