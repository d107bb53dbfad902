"""The study as data: what a study file asks for, before any store or statistic is involved.

`plan` holds the typed study (`StudySpec`: base config, search, seeds, tracking, the verdict rule's name),
its cells and units, and the names people read (a cell id as `crop+color`, a run's name); `keys` checks
and coerces the study file's dotted keys and values; `search_section` parses its `search:` section;
`strict_yaml` reads YAML 1.2 strictly (no `on`/`off` booleans, no merge keys); `op_sources` finds the ops a
study names that are not built in (`ops:`, installed entry points) and registers their checks with the
engine, reading a user's op from its source. The file itself is read by `ablations.run.study_file`, and
`ablations.run.op_loading` imports the ops and checks their contract. Imports nothing of the harness but
`messages`.
"""
