"""Published SimCLR numbers the reports compare against, as plain data, and the paper's notation for
colour strengths (`strength_label`).

Source: Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020, arXiv 2002.05709 (transcribed in /work/shared/REFERENCE.md). All values
are ImageNet top-1 linear-evaluation accuracy in percent, ResNet-50; CIFAR-10 studies here use a
small CNN and a short budget, so compare rankings and trends, never absolute values.
"""

from __future__ import annotations

# The training budget of Figure 5 and Table 5: ResNet-50 on ImageNet, batch 4096, 100 epochs.
PAPER_BATCH_SIZE = 4096
PAPER_EPOCHS = 100

# Figure 5: linear evaluation for pairs of transformations (at the budget above). Rows are the first
# transformation, columns the second, the diagonal the single transformation. Protocol (Section 3.1):
# every image is randomly cropped and resized first, then the target transformation(s) go to one branch
# only; the paper notes this lowers accuracy but should not change the ranking. The parameters for
# cutout, rotate, noise and sobel were not published.
FIGURE5_OPS: tuple[str, ...] = ("crop", "cutout", "color", "sobel", "noise", "blur", "rotate")
FIGURE5: dict[str, dict[str, float]] = {
    first: dict(zip(FIGURE5_OPS, row)) for first, row in {
        "crop":   (33.1, 33.9, 56.3, 46.0, 39.9, 35.0, 30.2),
        "cutout": (32.2, 25.6, 33.9, 40.0, 26.5, 25.2, 22.4),
        "color":  (55.8, 35.5, 18.8, 21.0, 11.4, 16.5, 20.8),
        "sobel":  (46.2, 40.6, 20.9, 4.0, 9.3, 6.2, 4.2),
        "noise":  (38.8, 25.8, 7.5, 7.6, 9.8, 9.8, 9.6),
        "blur":   (35.1, 25.2, 16.6, 5.8, 9.7, 2.6, 6.7),
        "rotate": (30.0, 22.5, 20.7, 4.3, 9.7, 6.5, 2.6),
    }.items()
}
# The figure's own "row mean" column (mean over the 7 cells of a row, diagonal included). Computed by the
# paper from unrounded cells: the noise row's printed cells average 15.56, its printed mean is 15.5.
FIGURE5_ROW_MEAN: dict[str, float] = {
    "crop": 39.2, "cutout": 29.4, "color": 25.7, "sobel": 18.8, "noise": 15.5, "blur": 14.5, "rotate": 13.8,
}

# Table 1: colour distortion strength s (jitter 0.8s/0.8s/0.8s/0.2s with p = 0.8, then grayscale p = 0.2).
TABLE1_SIMCLR: dict[float, float] = {0.125: 59.6, 0.25: 61.0, 0.5: 62.6, 1.0: 63.2}


def strength_label(value: float, _position=None) -> str:
    """1/8, 1/4, 1/2, 1: Table 1's notation for colour strengths (also a matplotlib tick formatter)."""
    if 0 < value < 1 and float(1 / value).is_integer():
        return f"1/{int(1 / value)}"
    return f"{value:g}"


# Table 5: NT-Xent temperature, batch PAPER_BATCH_SIZE, l2-normalised embeddings.
TABLE5_TEMPERATURE: dict[float, float] = {0.05: 59.7, 0.1: 64.4, 0.5: 60.7, 1.0: 58.0}

# Section 4.2, Figure 8: projection head, stated as margins in points of top-1, not as a table.
HEAD_H_OVER_Z = 10.0  # the representation before the head (h) beats the one after it (z) by more than this
HEAD_NONLINEAR_OVER_LINEAR = 3.0  # a nonlinear head beats a linear one by about this
HEAD_NONLINEAR_OVER_NONE = 10.0  # and no head by more than this (so linear beats none by about 7)

# Appendix B.9 (CIFAR-10): "with training longer than 300 epochs, tau = 0.5 was best at every batch size".
# The claim's regime; no accuracies per temperature are given for CIFAR-10.
B9_MIN_EPOCHS = 300
