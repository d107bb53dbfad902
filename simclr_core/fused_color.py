"""The paper's colour distortion as one compiled kernel (torch.compile, Inductor's C++ backend on CPU).

Eager, `augmentations.color_jitter` makes about thirty elementwise passes over a batch (brightness,
contrast, saturation and the hue round trip, each on the subset of samples whose random order puts it
at that position); on a 2-core CPU those passes, not the arithmetic, are most of a view's cost. Here
the same computation is one pure function of the batch and of per-sample parameter tensors, with no
data-dependent shapes, which Inductor fuses into one loop per image that keeps the image in cache.

Formulation. Brightness, contrast and saturation are all blends x -> clamp(f * x + (1 - f) * other)
with `other` 0 (brightness), the image's mean gray (contrast) or the pixel's gray (saturation), and
f = 1 is the exact identity (x * 1 + 0 * other == x). A sample's random order puts hue at some
position k: the kinds before it fill "pre" blend slots 0..k-1, those after it "post" slots, and the
unused slots hold the identity. So every sample runs the same program: three blends, the hue rotation
(where its jitter applies), three blends, then colour drop (where drawn). Each channel is carried as
its own (B, H, W) tensor: with one (B, 3, H, W) tensor, every blend's gray mixes the channels and
Inductor recomputed each earlier blend once per channel (3^6 times) instead of keeping it.

Random parameters are drawn by `colour` (the eager and the compiled path share the draws, so
one seed gives the same views on both, to float rounding); this module only computes.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Callable

import torch
from torch import Tensor

from simclr_core.colour import HUE_CENTRES, SLOTS, luma


def _blend(channels: list[Tensor], factor: Tensor, contrast: Tensor, saturation: Tensor) -> list[Tensor]:
    """One blend slot; factor, contrast and saturation are (B, 1, 1) (contrast and saturation 0/1)."""
    gray = luma(*channels)
    other = contrast * gray.mean(dim=(1, 2), keepdim=True) + saturation * gray
    keep = 1.0 - factor
    return [(channel * factor + keep * other).clamp(0.0, 1.0) for channel in channels]


def _hue(red: Tensor, green: Tensor, blue: Tensor, shift: Tensor) -> list[Tensor]:
    """HSV hue rotation by `shift` turns, the same piecewise-linear form as augmentations.adjust_hue."""
    max_channel = torch.maximum(torch.maximum(red, green), blue)
    min_channel = torch.minimum(torch.minimum(red, green), blue)
    chroma = max_channel - min_channel
    # Selects are free inside a fused loop (in eager they are slow on CPU, hence adjust_hue's arithmetic).
    hue = torch.where(max_channel == red, green - blue,
                      torch.where(max_channel == green, blue - red + 2.0 * chroma, red - green + 4.0 * chroma))
    hue = hue / chroma.clamp_min(torch.finfo(red.dtype).tiny) + 6.0 * shift
    hue = hue - 6.0 * torch.floor(hue / 6.0)
    rotated = []
    for channel, centre in enumerate(HUE_CENTRES):
        place = (hue - centre).abs()
        place = place - 1.0 if channel == 0 else 2.0 - place
        rotated.append((min_channel + chroma * place.clamp(0.0, 1.0)).clamp(0.0, 1.0))
    return rotated


def color_kernel(images: Tensor, factor: Tensor, contrast: Tensor, saturation: Tensor, hue_on: Tensor,
                 shift: Tensor, drop: Tensor) -> Tensor:
    """Colour jitter in per-sample order, then colour drop, on a float batch (B, 3, H, W) in [0, 1].

    factor, contrast, saturation: (2 * SLOTS, B) blend parameters, pre-hue slots first (contrast and
    saturation are 0/1 in the images' dtype); hue_on (B,) bool, shift (B,) hue shift in turns;
    drop (B,) bool. Pure tensor code: correct in eager too, fast only compiled.
    """
    channels = list(images.unbind(dim=1))
    factor, contrast, saturation = (t.to(images.dtype).unsqueeze(-1).unsqueeze(-1)
                                    for t in (factor, contrast, saturation))
    for slot in range(SLOTS):
        channels = _blend(channels, factor[slot], contrast[slot], saturation[slot])
    on = hue_on.view(-1, 1, 1)
    rotated = _hue(*channels, shift.to(images.dtype).view(-1, 1, 1))
    channels = [torch.where(on, new, old) for new, old in zip(rotated, channels)]
    for slot in range(SLOTS, 2 * SLOTS):
        channels = _blend(channels, factor[slot], contrast[slot], saturation[slot])
    gray = luma(*channels)
    dropped = drop.view(-1, 1, 1)
    return torch.stack([torch.where(dropped, gray, channel) for channel in channels], dim=1)


_compiled: Callable[..., Tensor] | None = None
# Why compiling failed in this process, per device type (no C++ compiler on CPU, no Triton on CUDA);
# later calls there go straight to the eager path instead of retrying a compile that costs seconds.
_failures: dict[str, str] = {}
# Device types whose first call (the one that compiles) has run in this process.
_compiled_on: set[str] = set()


@contextlib.contextmanager
def _no_cuda_home_notice(device: str):
    """Inductor's first compile on a CPU-only machine that has a CUDA toolkit logs "No CUDA runtime is
    found, using CUDA_HOME=..." (torch.utils.cpp_extension): no news to someone training on the CPU,
    printed in the middle of their output. Held back for that one call."""
    if device in _compiled_on:
        yield
        return
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
        _compiled_on.add(device)


def compiled_color(images: Tensor, *params: Tensor, required: bool) -> Tensor | None:
    """color_kernel compiled, or None where this process cannot compile it (a warning, once), so the
    caller runs its eager path. required=True raises instead (augment.compile: on)."""
    global _compiled
    device = images.device.type
    if device not in _failures:
        if _compiled is None:
            # dynamic=None: specialised to the first batch shape, one dynamic-shape recompile if the
            # shape changes (the run's preview grid, a last partial batch).
            _compiled = torch.compile(color_kernel, dynamic=None)
        try:
            with _no_cuda_home_notice(device):
                return _compiled(images, *params)
        except Exception as error:  # Inductor's failures have no common base class
            lines = str(error).strip().splitlines()
            _failures[device] = f"{type(error).__name__}: {lines[0] if lines else ''}"
            if not required:
                warnings.warn(f"augment.compile: the compiled colour kernel is unavailable on {device} here "
                              f"({_failures[device]}); using the eager colour ops, about 3x slower on CPU. "
                              f"Set augment.compile: off to silence this.", RuntimeWarning, stacklevel=3)
    if required:
        raise RuntimeError(f"augment.compile: on, but torch.compile failed on {device} here ({_failures[device]}); "
                           f"it needs a C++ compiler (g++ or clang++) on CPU, Triton on CUDA. Use augment.compile: "
                           f"auto or off.")
    return None


def compile_failure(device: torch.device) -> str | None:
    """Why the compiled kernel is unavailable on this device type in this process, or None
    (untried or working)."""
    return _failures.get(device.type)
