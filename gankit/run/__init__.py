"""A run's files and the views of them; nothing here trains.

The run directory (rundir.py, its one owner), checkpoints (checkpoint.py), atomic writes (atomic.py
is a leaf of the whole package, one level up), what a run draws while it trains
(training_views.py), pictures (pictures.py) and HTML pieces (html.py), the report (report.py), the
comparison of runs (compare.py) and TensorBoard events (tensorboard_log.py). `gankit sample`, `eval`
and `report` read a run through these files alone."""
