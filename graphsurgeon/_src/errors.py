"""Exceptions raised by graphsurgeon.

Every error the library raises on bad input is a :class:`GraphSurgeonError`;
its message names the file, tensor or pattern at fault and what was expected.
The CLI prints that message as one line and exits with status 2.
"""


class GraphSurgeonError(Exception):
    """Base class of every error graphsurgeon raises on bad input."""


class CheckpointNotFoundError(GraphSurgeonError, FileNotFoundError):
    """A path names no checkpoint, meta graph, frozen graph or SavedModel."""


class WrongPathKindError(GraphSurgeonError):
    """A directory was given where a file or prefix was meant, or the reverse."""


class UnsupportedPathError(GraphSurgeonError):
    """A path TensorFlow cannot open as given: its name is not valid UTF-8."""


class NoMetaGraphError(GraphSurgeonError):
    """A checkpoint has no ``.meta`` file and no graph was given to restore into."""


class UnregisteredOpError(GraphSurgeonError):
    """A graph uses an op type that this TensorFlow binary does not know."""


class CorruptCheckpointError(GraphSurgeonError):
    """A checkpoint's index or data file is truncated or unreadable."""


class PatternError(GraphSurgeonError):
    """A scope pattern is malformed or matches nothing."""


class TensorNotFoundError(GraphSurgeonError, KeyError):
    """A tensor or op name is not in the graph."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PlanError(GraphSurgeonError):
    """A restore or retrain plan cannot be carried out (shape mismatch, missing values)."""


class DataError(GraphSurgeonError):
    """A data set file or folder is missing, malformed or does not fit the model."""


class ConfigError(GraphSurgeonError):
    """A setting (CLI flag, TOML plan file, argument) is malformed."""


class RandomTensorError(ConfigError):
    """A tensor that must give the same values every run (one to cache, a new head's input) does not:
    it depends on random ops (dropout with ``keep_prob`` baked in, noise). ``allow_random=True``
    accepts it."""


class BatchDependentError(ConfigError):
    """A tensor's value for an example changes with the other examples of its batch (batch
    statistics: ``tf.nn.moments`` over the batch, batch norm in training mode), where a cache or an
    exported model needs each example to stand alone. ``allow_batch_dependent=True`` accepts it."""


class CacheError(GraphSurgeonError):
    """A bottleneck cache is damaged, stale (made by another model, tensor or preprocessing) or incomplete."""


class MigrateError(GraphSurgeonError):
    """A checkpoint migration cannot be done as asked (a rule matches nothing, names collide, …)."""


class UnsafeGraphError(GraphSurgeonError):
    """A graph holds ops that touch the file system or call Python, and running it was not allowed."""


class MergeHeadsError(GraphSurgeonError):
    """Task models cannot be merged into one multi-head model as asked (backbones differ, a head
    reads below the features, duplicate task names, …), or a merged model's task table is damaged."""


class ContinualError(GraphSurgeonError):
    """Models cannot be combined, or a model cannot add a class or learn a task, as asked: inputs
    that differ, a task name that exists, masks or a Fisher file made for another model, a method
    the model's earlier tasks rule out."""


class SignatureNotFoundError(GraphSurgeonError, KeyError):
    """A SavedModel lacks the signature asked for (``serving_default``); the message lists those it has."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
