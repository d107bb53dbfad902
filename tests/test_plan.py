"""Search-space expansion and naming: cells, planned trials, their ids, run names and plain forms."""

import pytest

from ablations.design.plan import (
    PIPELINE_KEY, SEED_KEY, Cell, SearchSpec, StudySpec, TrackingSpec, expand_cells, flat_config, flat_plain,
    format_value, plain_value, run_name, varied_plain,
)
from simclr_core.config import OpSpec, RunConfig

FIGURE5_OPS = ["crop", "cutout", "color", "sobel", "noise", "blur", "rotate"]


def spec(search: SearchSpec, seeds=(0,)) -> StudySpec:
    return StudySpec(name="s", source="s.yaml", base=RunConfig(), search=search, seeds=list(seeds),
                     tracking=TrackingSpec())


def test_pair_grid_of_seven_ops_has_49_cells_with_single_ops_on_the_diagonal():
    cells = expand_cells(SearchSpec(pairs=FIGURE5_OPS))
    assert len(cells) == 49
    assert len({cell.id for cell in cells}) == 49
    for cell in cells:
        first, second = cell.pair
        expected = [OpSpec(first)] if first == second else [OpSpec(first), OpSpec(second)]
        assert cell.values[PIPELINE_KEY] == expected
    assert cells[1].pair == ("crop", "cutout")  # rows are the first op, as in the paper's figure


def test_pairs_are_outermost_then_grid_keys_in_file_order():
    search = SearchSpec(pairs=["crop", "color"], grid={"train.temperature": [0.1, 0.5], "train.batch_size": [64, 128]})
    ids = [cell.id for cell in expand_cells(search)]
    assert len(ids) == 16
    assert ids[:3] == ["augment.pipeline=crop train.temperature=0.1 train.batch_size=64",
                       "augment.pipeline=crop train.temperature=0.1 train.batch_size=128",
                       "augment.pipeline=crop train.temperature=0.5 train.batch_size=64"]


def test_no_search_is_one_base_cell():
    assert [cell.id for cell in expand_cells(SearchSpec())] == ["base"]


def test_seeds_multiply_cells_and_each_trial_has_its_resolved_config():
    study = spec(SearchSpec(grid={"train.temperature": [0.1, 0.5]}), seeds=[3, 4])
    trials = study.trials()
    assert [t.unit for t in trials] == ["train.temperature=0.1 seed=3", "train.temperature=0.1 seed=4",
                                        "train.temperature=0.5 seed=3", "train.temperature=0.5 seed=4"]
    assert trials[1].config.train.temperature == 0.1 and trials[1].config.train.seed == 4
    assert trials[1].run_name == "temperature=0.1 seed=4"
    assert trials[1].varied == {"train.temperature": 0.1, SEED_KEY: 4}
    assert study.base == RunConfig()  # the base is not mutated


def test_config_for_copies_values_so_trials_share_nothing():
    pipeline = [OpSpec("crop", {"scale": [0.2, 1.0]})]
    study = spec(SearchSpec())
    first, second = study.config_for({PIPELINE_KEY: pipeline}, 0), study.config_for({PIPELINE_KEY: pipeline}, 1)
    first.augment.pipeline[0].params["scale"][0] = 0.9
    assert second.augment.pipeline[0].params["scale"] == [0.2, 1.0] and pipeline[0].params["scale"] == [0.2, 1.0]


def test_only_grids_expand():
    with pytest.raises(ValueError, match="tpe study samples its trials"):
        spec(SearchSpec(sampler="tpe", n_trials=3)).trials()


@pytest.mark.parametrize("value, text", [
    ([OpSpec("crop"), OpSpec("color")], "crop+color"),
    ([OpSpec("color", {"strength": 0.25})], "color(strength=0.25)"),
    ([OpSpec("crop", {"scale": [0.2, 1.0], "ratio": [0.75, 1.33]})], "crop(ratio=[0.75,1.33],scale=[0.2,1.0])"),
    ([], "[]"),
    (0.5, "0.5"),
    ("mlp", "mlp"),
    (None, "null"),
    (True, "true"),
])
def test_format_value_is_short_and_stable(value, text):
    assert format_value(value) == text


def test_run_names_and_ids_come_from_the_varied_values():
    values = {PIPELINE_KEY: [OpSpec("crop"), OpSpec("color")], "train.temperature": 0.1}
    assert run_name(values, 1) == "crop+color temperature=0.1 seed=1"
    assert Cell(values).id == "augment.pipeline=crop+color train.temperature=0.1"
    assert varied_plain(values, 1) == {PIPELINE_KEY: ["crop", "color"], "train.temperature": 0.1, SEED_KEY: 1}


def test_keys_that_share_a_field_are_named_whole_in_run_and_configuration_names():
    """`weight_decay=0.0 weight_decay=0.1` did not say which was train's and which the probe's."""
    import pandas as pd  # here: the other tests of plan need neither pandas nor the report

    from ablations.report.tables import configuration_labels
    from ablations.design.plan import cell_name
    search = SearchSpec(grid={"train.weight_decay": [0.5], "probe.weight_decay": [0.1], "train.temperature": [0.2]})
    (trial,) = spec(search).trials()
    assert trial.run_name == "train.weight_decay=0.5 probe.weight_decay=0.1 temperature=0.2 seed=0"
    assert cell_name(trial.cell.id) == "train.weight_decay=0.5 probe.weight_decay=0.1 temperature=0.2"
    by_columns = pd.DataFrame({"train.weight_decay": [0.5], "probe.weight_decay": [0.1], "train.temperature": [0.2]})
    assert configuration_labels(by_columns, list(by_columns.columns), pair=False) == [cell_name(trial.cell.id)]
    # A field varied once keeps its short name, as every shipped study's names are.
    assert run_name({PIPELINE_KEY: [OpSpec("crop")], "train.weight_decay": 0.0}, 2) == "crop weight_decay=0.0 seed=2"


def test_plain_value_writes_pipelines_in_study_file_form():
    assert plain_value([OpSpec("crop"), OpSpec("color", {"strength": 0.5})]) == ["crop", {"op": "color", "strength": 0.5}]
    assert plain_value([]) == [] and plain_value(0.5) == 0.5


def test_flat_config_has_every_field_under_its_dotted_key():
    config = RunConfig()
    config.augment.pipeline = [OpSpec("crop", {"scale": [0.2, 1.0]}), OpSpec("color")]
    flat = flat_config(config)
    assert list(flat) == list(RunConfig.field_keys())
    assert flat["train.temperature"] == 0.5
    assert flat[PIPELINE_KEY] == [{"op": "crop", "scale": [0.2, 1.0]}, "color"]
    assert flat_plain(config.to_plain()) == flat


def test_the_floor_runs_first_once_per_seed_untrained():
    from ablations.design.plan import FLOOR_CELL, SearchSpec, StudySpec, TrackingSpec
    from simclr_core.config import RunConfig

    spec = StudySpec("s", "s.yaml", RunConfig(), SearchSpec(grid={"train.temperature": [0.1, 0.5]}), [0, 1],
                     TrackingSpec(), floor=True)
    trials = spec.trials()
    assert [t.run_name for t in trials[:2]] == ["floor seed=0", "floor seed=1"]
    assert [t.unit for t in trials[:2]] == [f"{FLOOR_CELL} seed=0", f"{FLOOR_CELL} seed=1"]
    assert all(t.cell.floor and t.config.train.epochs == 0 for t in trials[:2])
    assert trials[0].varied == {"train.epochs": 0, "train.seed": 0}
    assert len(trials) == 2 + 2 * 2 and not any(t.cell.floor for t in trials[2:])
    assert trials[2].config.train.epochs == RunConfig().train.epochs
