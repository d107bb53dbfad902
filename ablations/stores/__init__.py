"""The stores: Optuna's storage and MLflow's tracking store, as many workers on many machines share them.

`errors` classifies and retries store failures; `optuna_storage` opens journal, SQLite and PostgreSQL
storages (`optuna_private` holds the Optuna internals it must touch, `optuna_params` the trial params);
`search` schedules a study's units exactly once; `identity` says what makes a unit and a study the same;
`resume` prepares a study at each start; `reconcile` makes the two stores agree after a crash; `confirm`
reads a study's results from its trials (the rules' rows, the parent's summary) and enqueues
confirmation rounds; `race` enqueues a race's next rung; `tracking` records runs in MLflow and holds the record layout (tags, roles, metric
names) its readers import; `tracking_store` opens the MLflow store; `ui_view` saves the MLflow UI views.
"""
