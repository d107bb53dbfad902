"""The seeded synthetic shapes data set: small, generated in memory, for tests and smoke runs.

Each class is one shape or texture; the colours are drawn so that raw pixels carry no class signal
and only spatial features (edges, corners, stripe orientation) separate the classes. It never touches
the disk, so it needs no cache.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from simclr_core.config import ConfigError

# The synthetic classes, in label order; `synthetic_classes` takes the first n.
SYNTHETIC_CLASS_NAMES = (
    "square", "disc", "plus", "horizontal_stripes", "ring",
    "vertical_stripes", "triangle", "diagonal_stripes", "x_cross", "checkerboard",
)


def make_synthetic(n_per_class: int, n_classes: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate `n_per_class * n_classes` shape images: uint8 (N, 3, size, size) and int64 labels (N,).

    Class k is one shape or texture (`SYNTHETIC_CLASS_NAMES[k]`) drawn at a random position and scale,
    in a random colour, over a random-colour background with pixel noise. The foreground and background
    colours are drawn from one symmetric distribution, so every pixel has the same distribution in every
    class: a linear classifier on raw pixels stays near chance, while convolutional features (edges,
    corners, stripe orientation) separate the classes. Rows are shuffled, so the first rows mix classes.
    """
    if not 1 <= n_classes <= len(SYNTHETIC_CLASS_NAMES):
        raise ConfigError(
            f"data.synthetic_classes: {n_classes!r} is not allowed; expected 1 to {len(SYNTHETIC_CLASS_NAMES)}"
        )
    if n_per_class < 1:
        raise ConfigError(f"data.synthetic_per_class: {n_per_class!r} is not allowed; expected an integer >= 1")
    if size < 8:
        raise ConfigError(f"data.synthetic_size: {size!r} is not allowed; expected an integer >= 8 (pixels)")

    rng = np.random.default_rng(seed)
    n = n_per_class * n_classes
    labels = np.repeat(np.arange(n_classes), n_per_class)
    rng.shuffle(labels)

    # Colour pairs (foreground, background), redrawn as pairs while too alike to see the shape. The
    # rejection treats both colours alike, so foreground and background keep the same distribution.
    colours = rng.uniform(0, 255, size=(n, 2, 3))
    while True:
        too_close = np.linalg.norm(colours[:, 0] - colours[:, 1], axis=1) < 80
        if not too_close.any():
            break
        colours[too_close] = rng.uniform(0, 255, size=(int(too_close.sum()), 2, 3))

    half_width = rng.uniform(0.2, 0.38, size=n) * size  # shape half-size in pixels
    centre_y = rng.uniform(half_width, size - half_width)
    centre_x = rng.uniform(half_width, size - half_width)
    stripe_phase = rng.uniform(0, 1, size=n)

    pixel_centres = np.arange(size) + 0.5
    mask = np.zeros((n, size, size), dtype=bool)
    for label in range(n_classes):
        rows = labels == label
        # Offsets from the shape centre, (rows, size, size), and per-row half-size r, (rows, 1, 1).
        dy = pixel_centres[None, :, None] - centre_y[rows, None, None]
        dx = pixel_centres[None, None, :] - centre_x[rows, None, None]
        r = half_width[rows, None, None]
        phase = stripe_phase[rows, None, None]
        mask[rows] = _SHAPES[SYNTHETIC_CLASS_NAMES[label]](dy, dx, r, phase)

    foreground = colours[:, 0, None, None, :]
    background = colours[:, 1, None, None, :]
    images = np.where(mask[..., None], foreground, background)
    images += rng.normal(0, 12, size=images.shape)
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def _stripes(coordinate: np.ndarray, r: np.ndarray, phase: np.ndarray) -> np.ndarray:
    # About seven stripes across the shape whatever its size, at a random phase.
    period = np.maximum(3.0, 2 * r / 3.5)
    return np.floor(coordinate / period + phase) % 2 == 0


def _inside_square(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (np.abs(dy) <= r) & (np.abs(dx) <= r)


_SHAPES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "square": lambda dy, dx, r, phase: _inside_square(dy, dx, r),
    "disc": lambda dy, dx, r, phase: dy**2 + dx**2 <= r**2,
    "plus": lambda dy, dx, r, phase: _inside_square(dy, dx, r)
    & ((np.abs(dy) <= r / 3) | (np.abs(dx) <= r / 3)),
    "horizontal_stripes": lambda dy, dx, r, phase: _inside_square(dy, dx, r) & _stripes(dy, r, phase),
    "ring": lambda dy, dx, r, phase: ((0.55 * r) ** 2 <= dy**2 + dx**2) & (dy**2 + dx**2 <= r**2),
    "vertical_stripes": lambda dy, dx, r, phase: _inside_square(dy, dx, r) & _stripes(dx, r, phase),
    "triangle": lambda dy, dx, r, phase: (np.abs(dy) <= r) & (np.abs(dx) <= (dy + r) / 2),
    "diagonal_stripes": lambda dy, dx, r, phase: _inside_square(dy, dx, r)
    & _stripes((dy + dx) / np.sqrt(2), r, phase),
    "x_cross": lambda dy, dx, r, phase: _inside_square(dy, dx, r)
    & ((np.abs(dy - dx) <= r / 2.5) | (np.abs(dy + dx) <= r / 2.5)),
    "checkerboard": lambda dy, dx, r, phase: _inside_square(dy, dx, r)
    & ((np.floor(dy / np.maximum(3.0, r / 2)) + np.floor(dx / np.maximum(3.0, r / 2))) % 2 == 0),
}


def make_synthetic_splits(
    n_per_class: int, n_classes: int, size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train and test sets of `make_synthetic`: train images, train labels, test images, test labels."""
    # The test set comes from its own seed, derived so that it never equals another run's train seed.
    test_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    train_images, train_labels = make_synthetic(n_per_class, n_classes, size, seed=seed)
    test_images, test_labels = make_synthetic(n_per_class, n_classes, size, seed=test_seed)
    return train_images, train_labels, test_images, test_labels
