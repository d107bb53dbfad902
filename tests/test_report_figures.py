"""The drawing functions (ablations.report.figures): the Figure 5 heatmap and its annotations, the grid
layout and the paper-comparison data, checked on the plotted data they return."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from test_report_records import OPS, WINNING, pair_study, store  # noqa: F401 (store is a fixture)

from ablations.report import figures
from ablations.report.records import read_study, runs_table
from ablations.report.stats import cell_stats


def test_pair_grid_heatmap_annotations(store, tmp_path):  # noqa: F811
    """The heatmap shows each cell's mean and SD over seeds in percent (n where one seed finished), and
    the row means, in the Figure 5 layout."""
    pair_study(store, tmp_path, WINNING)

    records = read_study(MlflowClient(store), store, "pairs")
    runs, *_ = runs_table(records.trials)
    figure, data = figures.pair_grid(cell_stats(runs, ["first", "second"]), list(OPS), "test")
    ax = figure.axes[0]
    texts = [t.get_text() for t in ax.texts]
    sd = 100 * 0.01 * math.sqrt(2)
    assert len(texts) == 9 + 3
    assert f"61.0\n±{sd:.1f}" not in texts  # the cell value is the mean over seeds, not one seed's
    assert f"60.0\n±{sd:.1f}" in texts  # crop->color
    assert "21.0\nn=1" in texts  # noise alone: seed 1 failed
    assert f"{np.mean([40.0, 60.0, 42.0]):.1f}" in texts  # crop's row mean
    assert [t.get_text() for t in ax.get_yticklabels()] == list(OPS)
    assert [t.get_text() for t in ax.get_xticklabels()] == [*OPS, "row mean"]
    assert data.shape == (3, 4)

    plt.close(figure)


def two_op_cells() -> pd.DataFrame:
    """crop and color: three cells finished, color→crop missing."""
    return pd.DataFrame({"first": ["crop", "crop", "color"], "second": ["crop", "color", "color"],
                         "mean": [0.30, 0.50, 0.20], "std": [0.01, 0.02, math.nan], "n": [2, 2, 1]})


def test_grid_matrices_lay_out_percent_with_row_means():
    mean, sd, n = figures.grid_matrices(two_op_cells(), ["crop", "color"])
    assert list(mean.index) == ["crop", "color"] and list(mean.columns) == ["crop", "color", figures.ROW_MEAN]
    assert mean.loc["crop", "color"] == pytest.approx(50.0) and sd.loc["crop", "color"] == pytest.approx(2.0)
    assert math.isnan(mean.loc["color", "crop"]) and n.loc["color", "color"] == 1
    # Row means over the finished cells: crop (30 + 50) / 2 = 40; color only its 20.
    assert list(mean[figures.ROW_MEAN]) == pytest.approx([40.0, 20.0])


def test_paper_comparison_ranks_the_shared_cells():
    figure, data = figures.paper_comparison(two_op_cells(), ["crop", "color"], rho=0.5, n_common=3, title="test")
    plt.close(figure)
    # Paper (Figure 5): crop→crop 33.1, crop→color 56.3, color→crop 55.8, color 18.8; this study has no
    # color→crop, so three cells are compared.
    assert list(zip(data["first"], data["second"])) == [("crop", "crop"), ("crop", "color"), ("color", "color")]
    assert list(data["paper_percent"]) == [33.1, 56.3, 18.8]
    assert list(data["study_rank"]) == [2.0, 1.0, 3.0] and list(data["paper_rank"]) == [2.0, 1.0, 3.0]


def test_save_writes_png_and_csv(tmp_path):
    figure, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    paths = figures.save(figure, pd.DataFrame({"x": [0.123456789]}), tmp_path / "sub" / "line")
    assert paths == [tmp_path / "sub" / "line.png", tmp_path / "sub" / "line.csv"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_text() == "x\n0.123457\n"  # six significant digits
    assert figure.number not in plt.get_fignums()  # closed


# Layout: the figures must read at every grid size, 1x1 to 7x7: no text box overlaps another.

def _text_boxes(figure):
    """Every visible, non-empty text of the figure (titles, axis and colour-bar labels, tick labels,
    legend texts; not the cells' own annotations) with its box in display units."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    boxes = []
    for ax in figure.axes:
        texts = [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        texts += ax.get_xticklabels() + ax.get_yticklabels()
        legend = ax.get_legend()
        if legend is not None:
            texts += legend.get_texts()
        boxes += [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text()]
    if figure._suptitle is not None:
        boxes.append((figure._suptitle.get_text(), figure._suptitle.get_window_extent(renderer)))
    return boxes


def _overlaps(figure) -> list[tuple[str, str]]:
    boxes = _text_boxes(figure)
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]


@pytest.mark.parametrize("size", range(1, 8))
def test_pair_grids_read_at_every_size(size):
    ops = ["crop", "cutout", "color", "sobel", "noise", "blur", "rotate"][:size]
    cells = pd.DataFrame([{"first": f, "second": s, "mean": 0.3 + 0.01 * i, "std": 0.01, "n": 2}
                          for i, (f, s) in enumerate((f, s) for f in ops for s in ops)])
    title = "aug_pairs: linear probe on h, test top-1 %, mean ± SD over seeds (n = 2)"
    figure, _ = figures.pair_grid(cells, ops, title)
    assert _overlaps(figure) == []
    plt.close(figure)
    figure, _ = figures.paper_comparison(cells, ops, 0.5, size * size, "aug_pairs against SimCLR Figure 5",
                                         study_label="this study (cifar10), mean ± SD over seeds")
    assert _overlaps(figure) == []
    plt.close(figure)
