"""The statistics: how a study's results become a verdict, on results tables only (never a store).

`results` defines the results table the rules read and which runs count (each source only adapts its
records to its rows); `contrasts` names the differences a rule compares; `block_model` fits a study's
runs as cell + seed and moderates each cell's variance towards the study's; `inference` judges a family
of contrasts on that fit (simultaneous max-t intervals, the edge, the cells that could be best);
`paired` is the per-seed view of one comparison; `model_checks` tests the model's assumptions;
`verdicts` holds the rules (each one `Rule` object: name, requirements, sentence, function) and decides
them; `reference` holds the paper's figures and notation; `confirmation` says which seeds a confirmation
round adds; `race` which cells of a race go on to its next rung, its audit and what the audit measures;
`calibration` measures the method's error rate by simulation.
"""
