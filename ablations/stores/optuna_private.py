"""The only place the harness touches Optuna's private names; tests/test_optuna_private.py fails
loudly when one of them disappears or changes meaning in a new Optuna release.

- `storage_of(study)` reads `Study._storage`. Optuna has no public accessor for a study's storage;
  `search` takes the storage as an argument instead, and falls back to this only for callers that
  do not pass it yet (ablations/run/'s `claim_next(study, spec)`, `fail_stale(study)`,
  `prepare(study, spec)`). Remove it once every caller passes the storage it opened.
- `RDB_BACKEND_CALLS` names the private RDBStorage methods that `optuna.storages._CachedStorage` (the
  wrapper every Study puts around an RDBStorage) calls on its backend. `RetryingRDBStorage` must
  retry them too, or a study's own reads and writes (`study.get_trials`, `study.tell`, heartbeat
  checks) would stop at the first lost connection. There is no public alternative short of giving
  up Optuna's cache of finished trials and its database-clock heartbeats.
"""

from __future__ import annotations

import optuna

RDB_BACKEND_CALLS = ("_create_new_trial", "_set_trial_param", "_get_trials", "_get_best_trial_id",
                     "_get_stale_trial_ids")


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes through (for an RDBStorage, Optuna's caching wrapper)."""
    return study._storage
