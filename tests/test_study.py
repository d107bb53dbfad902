"""Study files: strict parsing (every bad input names the file and the dotted key) and --set overrides."""

from pathlib import Path

import pytest

from ablations.design.plan import expand_cells
from ablations.run.study_file import load_study
from ablations.design.keys import StudyError
from simclr_core.config import OpSpec, RunConfig

STUDIES = Path(__file__).resolve().parents[1] / "studies"
FIGURE5_OPS = ["crop", "cutout", "color", "sobel", "noise", "blur", "rotate"]


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path, overrides=()) -> str:
    with pytest.raises(StudyError) as caught:
        load_study(path, list(overrides))
    return str(caught.value)


@pytest.mark.parametrize("body, key, allowed", [
    ("name: s\nbogus: 1\n", "bogus", "allowed: name"),
    ("name: s\nbase: {train: {tempertaure: 0.5}}\n", "base.train.tempertaure", "temperature"),
    ("name: s\nbase: {trian: {epochs: 1}}\n", "base.trian", "allowed: data, augment"),
    ("name: s\nbase: {train: {epochs: ten}}\n", "base.train.epochs", "expected an integer"),
    ("name: s\nbase: {train: {epochs: 2.0}}\n", "base.train.epochs", "expected an integer"),
    ("name: s\nbase: {probe: {enabled: 1}}\n", "base.probe.enabled", "true or false"),
    ("name: s\nbase: {train: {temperature: 0}}\n", "train.temperature", "> 0"),
    ("name: s\nbase: {train: {batch_size: 1}}\n", "train.batch_size", ">= 2"),
    ("name: s\nbase: {augment: {pipeline: [crop, colour]}}\n", "base.augment.pipeline[1]", "valid names"),
    ("name: s\nbase: {augment: {pipeline: [{op: crop, scael: [0.2, 1.0]}]}}\n", "base.augment.pipeline[0]", "scale"),
    ("name: s\nsearch: {pairs: [crop, colour]}\n", "search.pairs[1]: ", "valid names"),
    ("name: s\nsearch: {pairs: [[crop, color], [crop, colour]]}\n", "search.pairs[1][1]", "valid names"),
    ("name: s\nsearch: {pairs: [[crop, color, blur]]}\n", "search.pairs[0]", "a pair [first, second]"),
    ("name: s\nsearch: {pairs: [[crop, color], crop]}\n", "search.pairs[1]", "[first, second] pairs"),
    ("name: s\nsearch: {pairs: [[crop, color], [crop, color]]}\n", "search.pairs[1]", "twice"),
    ("name: s\nsearch: {grid: {augment.pipeline: [[crop], [bogus]]}}\n", "search.grid.augment.pipeline[1][0]",
     "valid names"),
    ("name: s\nsearch: {grid: {train.temperature: [0.5, 0]}}\n", "train.temperature", "> 0"),
    ("name: s\nsearch: {grid: {train.tempertaure: [0.5]}}\n", "search.grid.train.tempertaure", "train takes"),
    ("name: s\nsearch: {sampler: grid, n_trials: 3}\n", "search.n_trials", "tpe/random"),
    ("name: s\nsearch: {sampler: bayes}\n", "search.sampler", "grid, tpe, random"),
    ("name: s\nsearch: {sampler: tpe, params: {train.lr: {type: float, low: 0.1, high: 1}}}\n",
     "search.n_trials", "positive integer"),
    ("name: s\nsearch: {sampler: tpe, n_trials: 3, params: {train.epochs: {type: float, low: 1, high: 3}}}\n",
     "search.params.train.epochs.type", "categorical"),
    ("name: s\nsearch: {sampler: tpe, n_trials: 3, params: {train.lr: {type: float, low: 1, high: 0.1}}}\n",
     "search.params.train.lr", "below high"),
    ("name: s\nsearch: {sampler: tpe, n_trials: 3, params: {train.temperature: {type: float, low: 0, high: 1}}}\n",
     "train.temperature", "> 0"),
    ("name: s\nsearch: {grid: {train.seed: [0, 1]}}\n", "search.grid.train.seed", "seeds"),
    ("name: s\nseeds: [0, 0]\n", "seeds", "twice"),
    # Recorded as a signed 64-bit integer: a larger seed failed every trial, then the report.
    ("name: s\nseeds: [0, 99999999999999999999]\n", "seeds[1]", "from 0 to 9223372036854775807"),
    ("name: s\nseeds: [-1]\n", "seeds[0]", "from 0 to"),
    # A search that is written must vary something: these ran one silent "base" cell.
    ("name: s\nsearch: {sampler: grid}\n", "search: ", "leave `search` out"),
    ("name: s\nsearch: {pairs: []}\n", "search.pairs", "non-empty list"),
    ("name: s\nsearch: {pairs: [], grid: {train.lr: [0.1]}}\n", "search.pairs", "non-empty list"),
    ("name: s\nsearch: {grid: {}}\n", "search.grid", "non-empty mapping"),
    ("name: s\nsearch: {grid: }\n", "search.grid", "non-empty mapping"),
    ("name: s\ntracking: {log_modle: true}\n", "tracking.log_modle", "log_model"),
    ("name: bad/name\n", "name", "letters"),
    ("description: no name\n", "name", "required"),
    ("name: s\nbase: {train: {epochs: 1}, train: {epochs: 2}}\n", "", "given twice"),
    ("name: s\nbase: [train]\n", "base", "mapping"),
    # Each ran on the defaults silently before (the parser's `x or {}`).
    ("name: s\nbase: {train: 0}\n", "base.train: ", "expected a mapping"),
    ("name: s\nbase: {train: []}\n", "base.train: ", "expected a mapping"),
    ("name: s\nbase: []\n", "base: ", "expected a mapping"),
    ("name: s\nbase: 0\n", "base: ", "expected a mapping"),
    ("name: s\ntracking: 0\n", "tracking: ", "expected a mapping"),
    ("name: s\nsearch: []\n", "search: ", "expected a mapping"),
    ("name: s\nsearch: {}\n", "search: ", "empty search varies nothing"),
    # Accepted before: two trials with one name planned, one run.
    ("name: s\nsearch: {grid: {train.temperature: [0.5, 0.50]}}\n", "search.grid.train.temperature[1]",
     "list each value once"),
    ("name: s\nsearch: {pairs: [crop], grid: {augment.color_strength: [1, 1.0]}}\n",
     "search.grid.augment.color_strength[1]", "again"),
    # Ignored before: the seed comes from `seeds`.
    ("name: s\nbase: {train: {seed: 5}}\n", "base.train.seed", "top-level `seeds` list"),
])
def test_bad_study_files_name_the_file_the_key_and_what_is_allowed(tmp_path, body, key, allowed):
    message = error_of(write(tmp_path, body, name="my_study.yaml"))
    assert "my_study.yaml" in message
    assert key in message
    assert allowed in message


@pytest.mark.parametrize("override, key, allowed", [
    ("train.epochs=ten", "train.epochs", "expected an integer"),
    ("train.tempertaure=0.5", "train.tempertaure", "train takes"),
    ("train.temperature=0", "train.temperature", "> 0"),
    ("train.epochs", "train.epochs", "dotted.key=value"),
    ("model.head=huge", "model.head", "one of"),
    ("augment.compile=fast", "augment.compile", "one of auto, on, off"),
    ("augment.pipeline=[crop]", "augment.pipeline", "varies it"),
    ("tracking.log_model=yes please", "tracking.log_model", "true or false"),
    # Accepted and ignored before.
    ("train.seed=5", "train.seed", "top-level `seeds` list"),
])
def test_bad_set_values_name_the_file_the_override_and_the_key(tmp_path, override, key, allowed):
    path = write(tmp_path, "name: s\nsearch: {pairs: [crop, color]}\n", name="pairs.yaml")
    message = error_of(path, [override])
    assert "pairs.yaml" in message and "--set" in message
    assert key in message
    assert allowed in message


def test_yaml_reads_on_off_and_exponents_as_written_and_takes_merge_keys(tmp_path):
    """YAML 1.1 read the documented `on`/`off` as booleans ("False is not allowed; expected a string"),
    `1e-3` as a string, and refused `<<: *defaults` with a constructor error."""
    path = write(tmp_path, "name: s\nbase:\n  augment: {compile: on}\n  train: &t {lr: 1e-3, channels_last: off}\n"
                           "  probe: {enabled: true}\n")
    spec = load_study(path)
    assert spec.base.augment.compile == "on" and spec.base.train.channels_last == "off"
    assert spec.base.train.lr == 0.001
    spec = load_study(path, ["augment.compile=off", "train.channels_last=on", "train.lr=2e-3"])
    assert (spec.base.augment.compile, spec.base.train.channels_last, spec.base.train.lr) == ("off", "on", 0.002)
    merged = write(tmp_path, "name: s\ndefaults: &d {epochs: 3, lr: 0.5}\n", name="merge.yaml")
    assert "defaults: unknown key" in error_of(merged)  # the anchor's holder is still a key of the file
    merged.write_text("name: s\nbase:\n  train:\n    <<: {epochs: 3, lr: 0.5}\n    lr: 0.25\n")
    spec = load_study(merged)
    assert (spec.base.train.epochs, spec.base.train.lr) == (3, 0.25)
    assert "true or false" in error_of(write(tmp_path, "name: s\ntracking: {preview: yes}\n", name="yes.yaml"))


def test_set_checks_a_pipeline_like_the_file(tmp_path):
    message = error_of(write(tmp_path, "name: s\n", name="plain.yaml"), ["augment.pipeline=[crop, bogus]"])
    assert "plain.yaml" in message and "augment.pipeline[1]" in message and "valid names" in message


def test_set_overrides_base_values_with_typed_yaml_values(tmp_path):
    path = write(tmp_path, "name: s\nbase: {train: {epochs: 5}}\n")
    spec = load_study(path, ["train.epochs=1", "data.dataset=synthetic", "train.lr=1", "data.train_subset=null",
                             "augment.pipeline=[crop, {op: color, strength: 0.25}]", "tracking.log_model=true"])
    assert spec.base.train.epochs == 1 and spec.base.data.dataset == "synthetic"
    assert spec.base.train.lr == 1.0 and isinstance(spec.base.train.lr, float)
    assert spec.base.augment.pipeline == [OpSpec("crop"), OpSpec("color", {"strength": 0.25})]
    assert spec.tracking.log_model is True


def test_every_default_comes_from_the_typed_configs(tmp_path):
    spec = load_study(write(tmp_path, "name: s\n"))
    assert spec.base == RunConfig()
    assert spec.seeds == [0] and spec.search.sampler == "grid"
    assert [t.unit for t in spec.trials()] == ["base seed=0"]


def test_data_root_comes_from_simclr_data_only_when_the_study_leaves_it_unset(tmp_path):
    unset = write(tmp_path, "name: s\n", name="a.yaml")
    assert load_study(unset, data_root="/datasets").base.data.root == "/datasets"
    assert load_study(unset).base.data.root is None
    given = write(tmp_path, "name: s\nbase: {data: {root: /mine}}\n", name="b.yaml")
    assert load_study(given, data_root="/datasets").base.data.root == "/mine"
    assert load_study(unset, ["data.root=/set"], data_root="/datasets").base.data.root == "/set"


def test_seeds_multiply_cells_and_name_the_runs(tmp_path):
    path = write(tmp_path, f"name: s\nsearch: {{pairs: {FIGURE5_OPS}}}\nseeds: [0, 1]\n")
    trials = load_study(path).trials()
    assert len(trials) == 98
    assert len({t.unit for t in trials}) == 98
    crop_color = [t for t in trials if t.cell.pair == ("crop", "color")]
    assert [t.run_name for t in crop_color] == ["crop+color seed=0", "crop+color seed=1"]
    assert crop_color[1].varied == {"augment.pipeline": ["crop", "color"], "train.seed": 1}
    assert crop_color[1].config.train.seed == 1
    assert crop_color[1].config.augment.pipeline == [OpSpec("crop"), OpSpec("color")]


def test_pairs_given_as_pairs_are_just_those_cells_in_that_order(tmp_path):
    path = write(tmp_path, "name: s\nsearch:\n  pairs: [[crop, color], [crop, sobel], [crop, crop]]\n"
                           "  grid: {train.epochs: [2, 4]}\nseeds: [0]\n")
    spec = load_study(path)
    assert spec.search.pairs == ["crop", "color", "sobel"]
    trials = spec.trials()
    assert [t.run_name for t in trials] == [
        "crop+color epochs=2 seed=0", "crop+color epochs=4 seed=0", "crop+sobel epochs=2 seed=0",
        "crop+sobel epochs=4 seed=0", "crop epochs=2 seed=0", "crop epochs=4 seed=0"]
    assert [t.cell.pair for t in trials[::2]] == [("crop", "color"), ("crop", "sobel"), ("crop", "crop")]
    assert trials[4].config.augment.pipeline == [OpSpec("crop")] and trials[5].config.train.epochs == 4


def test_grids_multiply(tmp_path):
    path = write(tmp_path, "name: s\nsearch:\n  pairs: [crop, color]\n  grid:\n"
                           "    train.temperature: [0.1, 0.5, 1.0]\n    train.batch_size: [64, 128]\n"
                           "seeds: [3, 4]\n")
    spec = load_study(path)
    trials = spec.trials()
    assert len(trials) == 4 * 3 * 2 * 2
    assert len({(t.cell.id, t.seed) for t in trials}) == len(trials)
    first = trials[0]
    assert first.run_name == "crop temperature=0.1 batch_size=64 seed=3"
    assert first.cell.id == "augment.pipeline=crop train.temperature=0.1 train.batch_size=64"
    assert first.config.train.temperature == 0.1 and first.config.train.batch_size == 64
    assert spec.base.train.temperature == RunConfig().train.temperature  # the base is not mutated


def test_pipeline_grid_values_take_op_parameters(tmp_path):
    path = write(tmp_path, "name: s\nsearch:\n  grid:\n    augment.pipeline:\n      - [crop]\n"
                           "      - [crop, {op: color, strength: 0.25}]\n")
    cells = expand_cells(load_study(path).search)
    assert cells[1].values["augment.pipeline"] == [OpSpec("crop"), OpSpec("color", {"strength": 0.25})]
    assert cells[1].id == "augment.pipeline=crop+color(strength=0.25)"


def test_sampled_search_parses_typed_distributions(tmp_path):
    path = write(tmp_path, "name: s\nsearch:\n  sampler: tpe\n  n_trials: 12\n  pruner: median\n  params:\n"
                           "    train.lr: {type: float, low: 0.01, high: 2.0, log: true}\n"
                           "    train.batch_size: {type: int, low: 16, high: 64, step: 16}\n"
                           "    model.head: {type: categorical, choices: [none, linear, mlp]}\n"
                           "    augment.pipeline: {type: categorical, choices: [[crop], [crop, color]]}\n")
    search = load_study(path).search
    assert search.n_trials == 12 and search.pruner == "median"
    assert search.params["train.lr"].log and search.params["train.lr"].low == 0.01
    assert search.params["train.batch_size"].step == 16
    assert search.params["augment.pipeline"].choices[1] == [OpSpec("crop"), OpSpec("color")]


def test_a_study_without_a_search_runs_the_base_configuration_over_its_seeds(tmp_path):
    spec = load_study(write(tmp_path, "name: s\nseeds: [0, 1]\n"))
    assert [trial.run_name for trial in spec.trials()] == ["seed=0", "seed=1"]
    assert spec.search.varied_keys == []


def test_an_empty_base_section_takes_the_defaults(tmp_path):
    spec = load_study(write(tmp_path, "name: s\nbase: {train: , probe: {knn_k: 5}}\n"))
    assert spec.base.train == RunConfig().train and spec.base.probe.knn_k == 5


def shipped_studies(folder: Path) -> list[Path]:
    """The studies the project ships: those listed in `folder/SHIPPED` (one file name a line, `#` comments),
    not every YAML file there: a user's own study saved beside them is theirs, with no header to carry.
    A list rather than git's index, so a copy without .git (an sdist, an unpacked archive) checks the same."""
    lines = (folder / "SHIPPED").read_text().splitlines()
    return [folder / line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_the_shipped_list_names_files_that_exist_and_the_docs_table_names_each():
    shipped = shipped_studies(STUDIES)
    assert len(shipped) == len(set(shipped)) >= 8 and all(path.is_file() for path in shipped), shipped
    docs = (STUDIES.parent / "docs" / "studies.md").read_text()
    table = {line.split("`")[1] for line in docs.splitlines() if line.startswith("| `studies/")}
    assert table == {f"studies/{path.name}" for path in shipped}


def test_a_users_study_in_studies_is_not_held_to_the_shipped_header(tmp_path):
    # A copy of studies/ with the user's first study beside the shipped ones: no header, another name.
    folder = tmp_path / "studies"
    folder.mkdir()
    for path in [STUDIES / "SHIPPED", *shipped_studies(STUDIES)]:
        (folder / path.name).write_text(path.read_text())
    write(folder, "name: mine\nsearch: {pairs: [crop, color]}\nseeds: [0]\n", "my_study.yaml")
    assert load_study(folder / "my_study.yaml").name == "mine"
    assert [path.name for path in shipped_studies(folder)] == [path.name for path in shipped_studies(STUDIES)]
    assert folder / "my_study.yaml" not in shipped_studies(folder)


@pytest.mark.parametrize("path", shipped_studies(STUDIES), ids=lambda p: p.name)
def test_shipped_studies_parse_and_say_what_they_reproduce(path):
    spec = load_study(path)
    text = path.read_text()
    assert text.startswith("#") and "reproduces" in text.lower() and "cost" in text.lower()
    assert spec.name == path.stem
    if spec.search.sampler == "grid":
        assert spec.trials()


def test_the_pair_study_is_the_figure5_grid_with_seeds():
    spec = load_study(STUDIES / "aug_pairs.yaml")
    assert spec.search.pairs == FIGURE5_OPS
    assert len(spec.seeds) >= 2
    trials = spec.trials()
    assert len([t for t in trials if not t.cell.floor]) == 49 * len(spec.seeds)
    assert len([t for t in trials if t.cell.floor]) == (len(spec.seeds) if spec.floor else 0)
    assert spec.base.data.dataset == "cifar10"


DECIDED = """\
name: decided
search:
  grid: {augment.color_strength: [0.25, 1.0]}
seeds: [0, 1]
"""


def test_verdict_floor_and_confirm_are_read_and_checked(tmp_path):
    spec = load_study(write(tmp_path, DECIDED + "verdict: color_strength_rises\nfloor: true\nconfirm: {max_seeds: 5}\n"))
    assert (spec.verdict, spec.floor, spec.confirm.max_seeds) == ("color_strength_rises", True, 5)
    assert spec.confirm_limit() == 2 * (5 - 2)
    plain = load_study(write(tmp_path, DECIDED))
    assert (plain.verdict, plain.floor, plain.confirm, plain.confirm_limit()) == (None, False, None, 0)


@pytest.mark.parametrize("extra, key, allowed", [
    ("verdict: best_of_all\n", "verdict", "expected one of crop_color_best, color_strength_rises"),
    ("verdict: head_order\n", "verdict", "varies model.head"),
    ("verdict: crop_color_best\n", "verdict", "varies pairs"),
    ("floor: yes please\n", "floor", "expected true or false"),
    ("confirm: {max_seeds: 4}\n", "confirm", "name the rule with `verdict:`"),
    ("verdict: color_strength_rises\nconfirm: {max_seeds: 2}\n", "confirm.max_seeds", "above the 2 planned seeds"),
    ("verdict: color_strength_rises\nconfirm: {max_seeds: 4, rounds: 2}\n", "confirm.rounds", "allowed: max_seeds"),
])
def test_bad_decision_settings_name_the_key(tmp_path, extra, key, allowed):
    message = error_of(write(tmp_path, DECIDED + extra))
    assert f"study.yaml: {key}:" in message and allowed in message
