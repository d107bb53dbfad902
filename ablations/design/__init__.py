"""The study as data: what a study file asks for, before any store or statistic is involved.

`plan` holds the typed study (`StudySpec`: base config, search, seeds, tracking, the verdict rule's name),
its cells and units, and the names people read (a cell id as `crop+color`, a run's name); `keys` checks
and coerces the study file's dotted keys and values; `search_section` parses its `search:` section;
`strict_yaml` reads YAML 1.2 strictly (no `on`/`off` booleans, no merge keys). The file itself is read
by `ablations.run.study_file`. Imports nothing of the harness but `messages`.
"""
