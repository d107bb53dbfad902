"""ablations: the harness around simclr_core. Study files in, Optuna trials, MLflow records and reports out.

Its folders are its layers, each importing only from those listed before it (tests/test_layers.py
holds this):

- `messages`: what the commands say (one-line errors, durations, exit statuses, passwords taken out);
- `design/`: the study as data (its design): the plan (cells, units, seeds, cell names) and the study file's keys and
  `search:` section, read strictly; no store, no statistics;
- `stats/`: the statistics: the block model, the inference that judges a rule's contrasts, the rules
  and their verdicts, the paper's figures, the confirmation rounds, the calibration of the method; it
  reads results tables and never a store;
- `stores/`: Optuna and MLflow: scheduling units exactly once, storages, resume and reconciling the two
  stores, recording runs (`tracking`, whose constants are the record layout) and the saved UI views;
- `report/`: `python -m ablations.report`, tables and figures from the records;
- `run/`: `python -m ablations.run`, which reads a study file (`run/study_file`: it checks the rule the
  file names against `stats`, so it sits above them) and runs it.
"""
