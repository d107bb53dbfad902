"""Batched SimCLR augmentations: every op in the paper, with random parameters drawn per sample.

Each op takes a float batch (B, 3, H, W) in [0, 1] on any device and a `torch.Generator` on that same
device, and returns a new batch of the same shape, dtype and device, in [0, 1]. Parameters are drawn
independently for every sample in one call (torchvision.transforms.v2 draws one set per call, which
would give every image in a batch the same crop). Defaults follow google-research/simclr `data_util.py`
(paper Appendix A); the ops the paper names without parameters (cutout, rotate, noise, sobel; Section 3.1,
Figure 4) take the values noted at each op.

All random numbers come from the generator passed in, so one seed gives bit-identical views on CPU.
In training, every op of a pipeline draws from a stream of its own (`OpStreams`, keyed by seed, op,
view and step), so an op shared by two pipelines draws the same values in both. Ops loop over a
handful of op kinds, never over samples.

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
import zlib
from typing import Any, Callable

import numpy
import torch
import torch.nn.functional as F
from torch import Tensor

from simclr_core.colour import (
    _colour_eager, _draw_color, _draw_jitter, _jitter_slots, _JitterDraws, color, color_drop, color_jitter,
    rgb_to_gray,
)
# validate_pipeline is the configuration's check (torch-free, in config); named here too, beside the ops.
from simclr_core.config import COMPILE_MODES, AugmentConfig, ConfigError, OpSpec, validate_pipeline
from simclr_core.fused_color import compile_failure, compiled_color
from simclr_core.op_schema import BUILTIN_OPS, check_from_annotation, register_schema, unregister_schema
from simclr_core.per_sample import bernoulli, broadcast, check_probability, transform_chosen, uniform

# Attempts at a crop box that fits before falling back to a centre crop, as torchvision.
_CROP_ATTEMPTS = 10



# --------------------------------------------------------------------------------------------------
# Per-sample building blocks: factors are (B,) tensors, one value per image.
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
    check_probability(p)
    flip = bernoulli(images.shape[0], p, generator, images.device)
    return transform_chosen(images, flip, lambda chosen: chosen.flip(dim))


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
    check_probability(p)
    batch, _, height, width = images.shape
    if height != width:
        raise ValueError(f"rotate needs square images, got {height}x{width}")
    apply = bernoulli(batch, p, generator, images.device)
    quarter_turns = torch.randint(1, 4, (batch,), generator=generator, device=images.device)
    # Three subsets, one per angle; rot90 of a whole subset is one strided copy.
    rotated = images.clone()
    for turns in (1, 2, 3):
        index = torch.nonzero(apply & (quarter_turns == turns)).squeeze(1)
        if index.numel():
            rotated.index_copy_(0, index, torch.rot90(images.index_select(0, index), turns, dims=(-2, -1)))
    return rotated


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
    check_probability(p)
    batch, _, height, width = images.shape
    device = images.device
    side = max(1, round(side_fraction * min(height, width)))
    apply = bernoulli(batch, p, generator, device)
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
    check_probability(p)
    batch, channels, height, width = images.shape
    device = images.device
    radius = (height // 10) // 2
    apply = bernoulli(batch, p, generator, device)
    sigmas = uniform(batch, sigma[0], sigma[1], generator, device)
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
    check_probability(p)
    apply = bernoulli(images.shape[0], p, generator, images.device)
    gaussian = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return gaussian.mul_(std * broadcast(apply, images)).add_(images).clamp_(0.0, 1.0)


def sobel(images: Tensor, generator: torch.Generator, *, p: float = 1.0) -> Tensor:
    """Sobel edge magnitude of the grayscale image with probability p (paper Figure 4(i)).

    The magnitude is divided by its per-image maximum so it fills [0, 1] (a flat image gives zeros),
    and replicated to 3 channels so the encoder's input stays RGB-shaped. Borders are replicated, so
    the frame of the image is not an edge.
    """
    check_probability(p)
    apply = bernoulli(images.shape[0], p, generator, images.device)
    return transform_chosen(images, apply, lambda chosen: _sobel_edges(chosen).expand_as(chosen))


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


# A new built-in op is an entry here and one in op_schema.OP_PARAMETERS (its parameter names, which a study
# file's checks read without torch); an op from outside the engine is handed in with `register_op`.
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


def register_op(name: str, function: Callable[..., Tensor],
                checks: dict[str, tuple[Callable[[Any], bool], str]] | None = None) -> None:
    """Hand the engine an op of its own: `function(images, generator, **params) -> images`, batched like
    the built-in ops, its per-sample draws from `generator` only. `checks`: each keyword parameter's
    (check, what is allowed); left out, read from the signature's annotations and defaults
    (op_schema.check_from_annotation). Registering a name again replaces the op."""
    if checks is None:
        checks = {param.name: check_from_annotation(_annotation_text(param.annotation), param.default)
                  for param in _keyword_parameters(function)}
    register_schema(name, checks)
    OPS[name] = function
    _defaults.cache_clear()


def unregister_op(name: str) -> None:
    """Forget a registered op (built-in ops stay)."""
    if name not in BUILTIN_OPS:
        unregister_schema(name)
        OPS.pop(name, None)
        _defaults.cache_clear()


def _keyword_parameters(function: Callable[..., Tensor]) -> list[inspect.Parameter]:
    return [param for param in list(inspect.signature(function).parameters.values())[2:]
            if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)]


def _annotation_text(annotation: Any) -> str | None:
    # `from __future__ import annotations` leaves the text; otherwise the object, whose repr is its text.
    if annotation is inspect.Parameter.empty:
        return None
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def op_params(name: str) -> list[str]:
    """The keyword parameters an op accepts, from its signature."""
    return list(_defaults(name))


@functools.cache
def _defaults(name: str) -> dict[str, Any]:
    """An op's keyword parameters and their defaults, from its signature (defined there only)."""
    return {param.name: param.default for param in _keyword_parameters(OPS[name])}


# --------------------------------------------------------------------------------------------------
# Random streams: one per op, so that pipelines sharing an op share its draws.
# --------------------------------------------------------------------------------------------------

# Domain of the op streams' seeds, apart from trainer.random_streams' (seed, index) keys.
_OP_STREAM_DOMAIN = 0x0B5


class OpStreams:
    """One random stream for every (op, occurrence, view) of a pipeline at every step, each seeded
    from (seed, op name, occurrence, view, step) through numpy's SeedSequence.

    Common random numbers across the cells of a study: crop draws the same boxes in crop->color and
    crop->sobel, colour the same jitter in crop->color and color->crop, at every step, whatever other
    ops run and in which order (with one stream for the whole pipeline, from the second batch on
    even the shared crop drew different boxes). `occurrence` counts earlier uses of the same op in
    the pipeline (a second crop is another stream); `view` is the view's index. Nothing is carried
    from step to step, so a run resumed at step s draws exactly what it would have drawn; making the
    streams costs microseconds per op and step (benchmarks/RESULTS.md).
    """

    def __init__(self, seed: int, device: torch.device | str = "cpu", step: int = 0):
        self.seed, self.device, self.step = int(seed), torch.device(device), int(step)
        self._generators: dict[tuple[str, int, int], torch.Generator] = {}

    def at(self, step: int) -> "OpStreams":
        """Move to `step` (the global optimiser step); returns self."""
        self.step = int(step)
        return self

    def __call__(self, op: str, occurrence: int = 0, view: int = 0) -> torch.Generator:
        """The generator of `op`'s `occurrence`-th use in view `view` at the current step, freshly seeded."""
        key = (op, occurrence, view)
        generator = self._generators.get(key)
        if generator is None:
            generator = self._generators[key] = torch.Generator(device=self.device)
        entropy = [self.seed, _OP_STREAM_DOMAIN, zlib.crc32(op.encode()), occurrence, view, self.step]
        state = numpy.random.SeedSequence(entropy).generate_state(1, dtype=numpy.uint64)[0]
        return generator.manual_seed(int(state))


def _generator_for(source: "torch.Generator | OpStreams", op: str, occurrence: int, view: int) -> torch.Generator:
    # A plain generator (scripts, previews, tests) feeds every op in turn; OpStreams gives each its own.
    return source(op, occurrence, view) if isinstance(source, OpStreams) else source


# --------------------------------------------------------------------------------------------------
# Pipelines and views.
# --------------------------------------------------------------------------------------------------


def _check_images(images: Tensor) -> None:
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"expected float images in [0, 1], got {images.dtype}; convert uint8 with "
                        f"images.float() / 255")


def apply_pipeline(images: Tensor, pipeline: list[OpSpec], generator: torch.Generator | OpStreams, *,
                   color_strength: float | None = None, compile: str = "off", view: int = 0) -> Tensor:
    """Apply the ops in order; `color_strength` is the strength for color/color_jitter entries that
    do not set one (None: the op's own default, 1.0).

    generator: one torch.Generator that every op draws from in turn, or OpStreams, from which each op
    takes its own stream for (op, its occurrence in the pipeline, `view`).

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
    seen: dict[str, int] = {}
    for spec in pipeline:
        params = dict(spec.params)
        if spec.op in _STRENGTH_OPS and color_strength is not None:
            params.setdefault("strength", color_strength)
        occurrence = seen[spec.op] = seen.get(spec.op, -1) + 1
        op_generator = _generator_for(generator, spec.op, occurrence, view)
        if fused and spec.op in _COLOUR_DRAWS:
            draws, drop = _COLOUR_DRAWS[spec.op](images, op_generator, **{**_defaults(spec.op), **params})
            images = _fused_colour(images, draws, drop, required=compile == "on")
        else:
            images = OPS[spec.op](images, op_generator, **params)
    return images


def _uses_kernel(compile: str, device: torch.device) -> bool:
    # auto leaves CUDA eager: there the eager ops are already fast, and the compiled kernel has only
    # been measured on CPU.
    return compile == "on" or (compile == "auto" and device.type == "cpu")


def colour_path(config: AugmentConfig, device: torch.device) -> str:
    """How make_views has been running `config`'s colour ops on `device`, for the run's record:
    "compiled", "eager", "eager (compiling failed: ...)" or "none" (no colour op in the pipeline)."""
    if not any(spec.op in _COLOUR_DRAWS for spec in config.pipeline):
        return "none"
    if not _uses_kernel(config.compile, device):
        return "eager"
    failure = compile_failure(device)
    return f"eager (compiling failed: {failure})" if failure else "compiled"


def make_views(images: Tensor, config: AugmentConfig, generator: torch.Generator | OpStreams,
               n_views: int = 2, base_generator: torch.Generator | None = None) -> list[Tensor]:
    """n_views augmented views of a float batch (B, 3, H, W) in [0, 1].

    generator: a torch.Generator every op draws from in turn, or OpStreams (the trainer's), which gives
    every op of every view a stream of its own (see OpStreams).

    symmetric: every view gets the pipeline with its own draws (paper Section 2.1, Algorithm 1).
    asymmetric: the paper's Figure 5 protocol (Section 3.1): the pipeline on the first view only, the
    others left as identity; with base_crop, every image first gets one random resized crop, shared
    by all its views, before the target ops. The base crop draws from `base_generator` where given,
    else from `generator` (with OpStreams, its own "base_crop" stream, so every pipeline of a study
    sees the same base crops under one seed).
    """
    _check_images(images)
    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    if config.protocol == "symmetric":
        return [apply_pipeline(images, config.pipeline, generator, color_strength=config.color_strength,
                               compile=config.compile, view=view) for view in range(n_views)]
    if config.protocol == "asymmetric":
        base_source = base_generator or _generator_for(generator, "base_crop", 0, 0)
        base = crop(images, base_source) if config.base_crop else images
        first = apply_pipeline(base, config.pipeline, generator, color_strength=config.color_strength,
                               compile=config.compile)
        # Clones, so a caller that edits one view in place cannot change the others or the input.
        return [first] + [base.clone() for _ in range(n_views - 1)]
    raise ConfigError(f"augment.protocol: {config.protocol!r} is not allowed; expected one of "
                      f"asymmetric, symmetric")
