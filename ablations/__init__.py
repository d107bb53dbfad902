"""ablations: the harness around simclr_core. Study files in, Optuna trials, MLflow records and reports out.

- `study` parses a study file strictly into a `plan.StudySpec` (cells, seeds, the floor, the verdict rule),
  its `search:` section through `study_search` and every key and value through `study_keys`;
- `search` schedules its units on Optuna exactly once under any number of workers, `resume` prepares a
  study at each start and retries dead trials (storages opened by `optuna_storage`; Optuna's private names
  only in `optuna_private`); `stores` retries lost servers;
- `tracking` records every trial in MLflow; `run/` is the `python -m ablations.run` command (cli,
  session, runner, workers, console, estimate, signals);
- `block_model` fits a study's runs (cell + seed, each cell's variance moderated towards the study's),
  `inference` judges a rule's contrasts on it (simultaneous intervals, the edge, the best), `calibration`
  measures that method's error rate by simulation; `paired` holds the per-seed view of one comparison,
  `verdicts` each study's rule, `confirm` the seeds added where a verdict is open; `report/` is
  `python -m ablations.report`;
- `messages` formats what the commands say (one-line errors, durations, exit statuses).
"""
