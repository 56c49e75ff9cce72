"""Migrate checkpoints: rename, drop, keep, cast, merge — streaming, verified, never touching the source.

A migration runs in named phases over one record, :class:`PlannedTensor`:

    plan (rules on names) -> casts -> joined partitions -> TF2 keys      (plan.py; nothing written)
    -> assemble the bundle (assemble.py, through storage.bundle_writer)  (under a staging directory)
    -> verify (verify.py) -> move into place (storage.staging)

>>> rules = Rules(rename=[(r"^old/", "new/")], drop=["global_step"])
>>> sorted(plan_names(["old/w", "global_step", "b"], rules).items())
[('b', 'b'), ('old/w', 'new/w')]
"""
from graphsurgeon._src.migrate.diff import diff
from graphsurgeon._src.migrate.plan import PlannedTensor
from graphsurgeon._src.migrate.rules import CAST_DTYPES, PRESETS, RNN_CELL_RENAMES, Rules, plan_names
from graphsurgeon._src.migrate.run import MigrationResult, migrate
from graphsurgeon._src.migrate.verify import LEVELS as VERIFY_LEVELS

__all__ = ["CAST_DTYPES", "PRESETS", "RNN_CELL_RENAMES", "VERIFY_LEVELS", "MigrationResult", "PlannedTensor", "Rules",
           "diff", "migrate", "plan_names"]
