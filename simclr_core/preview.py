"""A picture of what an augmentation pipeline does: originals beside their views, each column named
with the ops that made it (logged with every trial as augment_preview.png)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from simclr_core.augmentations import make_views
from simclr_core.config import AugmentConfig


# Height of the preview's header band: two lines of PIL's default bitmap font naming each column.
PREVIEW_HEADER_PX = 30


def render_preview(images: Tensor, config: AugmentConfig, generator: torch.Generator, path: str | Path,
                   n_views: int = 2, max_images: int = 8, upscale: int = 4) -> Path:
    """Write a PNG grid: one row per image, columns original, view 1 .. view n_views, each
    nearest-upscaled `upscale` times so 32 px images are visible, under a header that names each
    column and the ops that made it. Accepts uint8 or float images."""
    from PIL import Image, ImageDraw
    from torchvision.utils import make_grid

    images = images[:max_images]
    if not images.is_floating_point():
        images = images.float() / 255.0
    views = make_views(images, config, generator, n_views=n_views)
    # (B, 1 + n_views, 3, H, W) -> rows of [original, view 1, ...], one row per image.
    tiles = torch.stack([images] + views, dim=1).flatten(0, 1)
    tiles = F.interpolate(tiles.float(), scale_factor=upscale, mode="nearest")
    grid = make_grid(tiles, nrow=1 + n_views, padding=2, pad_value=1.0)
    # As torchvision's save_image converts: round to uint8, channels last.
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    body = Image.fromarray(pixels)
    sheet = Image.new("RGB", (body.width, body.height + PREVIEW_HEADER_PX), "white")
    sheet.paste(body, (0, PREVIEW_HEADER_PX))
    draw = ImageDraw.Draw(sheet)
    column = images.shape[-1] * upscale + 2
    for index, (title, ops) in enumerate(preview_labels(config, n_views)):
        draw.text((2 + index * column + 2, 2), title, fill="black")
        draw.text((2 + index * column + 2, 15), ops, fill="dimgray")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def preview_labels(config: AugmentConfig, n_views: int) -> list[tuple[str, str]]:
    """(title, ops) of each preview column: the original, then every view and what made it."""
    ops = "+".join(spec.op for spec in config.pipeline) or "no ops"
    if config.protocol == "symmetric":
        return [("original", "")] + [(f"view {v + 1}", ops) for v in range(n_views)]
    base = "base crop" if config.base_crop else "identity"
    first = f"base crop, {ops}" if config.base_crop else ops
    return [("original", ""), ("view 1", first)] + [(f"view {v + 1}", base) for v in range(1, n_views)]
