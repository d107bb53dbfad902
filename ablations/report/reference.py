"""Published SimCLR numbers the reports compare against, as plain data.

Source: Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020, arXiv 2002.05709 (transcribed in /work/shared/REFERENCE.md). All values
are ImageNet top-1 linear-evaluation accuracy in percent, ResNet-50; CIFAR-10 studies here use a
small CNN and a short budget, so compare rankings and trends, never absolute values.
"""

from __future__ import annotations

# Figure 5: linear evaluation for pairs of transformations (batch 4096, 100 epochs). Rows are the first
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
TABLE1_SIMCLR_STRENGTH1_BLUR = 64.5  # s = 1 plus Gaussian blur
TABLE1_SUPERVISED: dict[float, float] = {0.125: 77.0, 0.25: 76.7, 0.5: 76.5, 1.0: 75.7}
TABLE1_SUPERVISED_STRENGTH1_BLUR = 75.4

# Table 5: NT-Xent temperature, batch 4096, l2-normalised embeddings (without normalisation:
# tau 10 -> 57.2, tau 100 -> 57.0).
TABLE5_TEMPERATURE: dict[float, float] = {0.05: 59.7, 0.1: 64.4, 0.5: 60.7, 1.0: 58.0}

# Table B.1: batch size with linear learning-rate scaling, 100 epochs.
TABLE_B1_BATCH_100_EPOCHS: dict[int, float] = {256: 57.5, 1024: 62.8, 4096: 64.6, 8192: 64.8}

# Section 4.2, Figure 8: projection head. Stated as margins, not a table.
PROJECTION_HEAD_FINDINGS = (
    "a nonlinear head beats a linear one by about 3% and no head by more than 10%; "
    "the representation before the head (h) beats the one after it (z = g(h)) by more than 10%"
)

# Appendix B.9: CIFAR-10, ResNet-50 (3x3 stride-1 stem, no max-pool), colour strength 0.5, no blur.
CIFAR10_BEST_LINEAR = 94.0  # batch 1024; supervised 95.1
