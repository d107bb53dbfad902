"""The verdict rules by name, with what a study must vary for each to have its comparisons: what a
study file's `verdict:` is checked against before anything heavy is imported (the rules themselves,
`ablations.verdicts.RULES`, need pandas and scipy). tests/test_study.py holds the two to each other.
"""

# Rule -> what the study must vary: "pairs" (search.pairs), or dotted keys of its grid.
REQUIRES: dict[str, tuple[str, ...]] = {
    "crop_color_best": ("pairs",),
    "color_strength_rises": ("augment.color_strength",),
    "head_order": ("model.head",),
    "temperature_half_best": ("train.temperature", "train.batch_size"),
    "crop_color_lead_grows": ("pairs", "train.epochs"),
}
