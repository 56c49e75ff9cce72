"""The sub-commands on many models and tasks: merge-heads, add-head, remove-head, learn-task,
combine, add-class."""
from __future__ import annotations

from graphsurgeon._src.cli.task_commands import (
    cmd_add_class,
    cmd_add_head,
    cmd_combine,
    cmd_learn_task,
    cmd_merge_heads,
    cmd_remove_head,
)

# the options a command ends with, each spelled one way: name -> (flag, add_argument's keywords)
_ENDINGS = {"tags": ("--tags", {"nargs": "+", "help": "SavedModel tags (default: serve)"}),
            "quiet": ("--quiet", {"action": "store_true"}), "json": ("--json", {"action": "store_true"})}


def finish(s, func, *endings: str, **defaults) -> None:
    """End the sub-command parser ``s``: the options ``endings`` names (``tags``, ``quiet``, ``json``),
    in that order, then ``func`` as what the command runs (with ``defaults``)."""
    for name in endings:
        flag, keywords = _ENDINGS[name]
        s.add_argument(flag, **keywords)
    s.set_defaults(func=func, **defaults)


def _multihead_parsers(sub):
    s = sub.add_parser("merge-heads", help="merge task models that share a backbone into one SavedModel served "
                                           "with (inputs, task_id)")
    s.add_argument("models", nargs="+", metavar="MODEL", help="task models: paths, directories or globs")
    s.add_argument("--features", required=True, metavar="TENSOR",
                   help="where the backbone ends: a tensor, or a layer name for Keras models")
    s.add_argument("--out", required=True, metavar="DIR", help="the SavedModel directory to write (must not exist)")
    s.add_argument("--input", metavar="TENSOR", help="the models' input (default: the one placeholder below "
                                                     "--features)")
    s.add_argument("--output", metavar="TENSOR", help="the models' output (default: told from the graph)")
    s.add_argument("--task-names", metavar="FILE", help="one task name per line, in the models' order")
    s.add_argument("--atol", type=float, default=0.0, help="backbone weights this close count as equal")
    s.add_argument("--group-backbones", action="store_true",
                   help="when backbone weights differ, build one backbone per group instead of refusing")
    s.add_argument("--no-verify", action="store_true", help="skip comparing the written model with each head")
    s.add_argument("--allow-batch-dependent", action="store_true",
                   help="accept features, or a head (from the features to its output), whose value for an example "
                        "changes with the other examples of its batch (batch norm in training mode): the written "
                        "model's answer for an example then depends on the examples served with it")
    finish(s, cmd_merge_heads, "tags", "quiet", "json")
    for name, fn, what in (("add-head", cmd_add_head, "MODEL"), ("remove-head", cmd_remove_head, "TASK")):
        s = sub.add_parser(name, help="a new version of a merged model with one task "
                                      + ("added" if what == "MODEL" else "removed"))
        s.add_argument("dir", metavar="DIR", help="a version written by merge-heads (it is not changed)")
        if what == "MODEL":
            s.add_argument("model", metavar="MODEL", help="the task model whose head is added")
            s.add_argument("--task-name", help="its task name (default: from its path)")
            s.add_argument("--output", metavar="TENSOR", help="the model's output (default: told from the graph)")
            s.add_argument("--atol", type=float, default=0.0, help="backbone weights this close count as equal")
            s.add_argument("--tags", nargs="+", help="SavedModel tags (default: serve)")
            s.add_argument("--allow-batch-dependent", action="store_true",
                           help="accept features, or a head (from the features to its output), whose value for an "
                                "example changes with the other examples of its batch (batch norm in training mode): "
                                "the written model's answer for an example then depends on the examples served with it")
        else:
            s.add_argument("task", metavar="TASK", help="the task's name, or its id when no task has that name")
        s.add_argument("--out", metavar="NEWDIR", help="the new version's directory (default: DIR's version "
                                                       "number + 1, beside it)")
        s.add_argument("--no-verify", action="store_true", help="skip comparing the written model with each head")
        finish(s, fn, "json")


def _continual_parsers(sub):
    _learn_task_parser(sub)
    _combine_parser(sub)
    _add_class_parser(sub)


def _learn_task_parser(sub):
    s = sub.add_parser("learn-task", help="add a task to a model (plain or many-heads) with a continual-learning "
                                          "method; writes a many-heads model")
    s.add_argument("--model", required=True, help="a plain model or a many-heads directory (it is not changed)")
    s.add_argument("--data", required=True, help="the new task's labelled data (.npz or image folder)")
    s.add_argument("--task", required=True, metavar="NAME", help="the new task's name")
    s.add_argument("--method", required=True, choices=["feature-extraction", "fine-tune", "joint", "lwf", "ewc",
                                                       "packnet", "piggyback"])
    s.add_argument("--out", required=True, metavar="DIR", help="the many-heads directory to write (must not exist)")
    s.add_argument("--features", metavar="TENSOR", help="where a plain model's backbone ends (default: the one its "
                   "model.json names: models written by combine or add-class)")
    s.add_argument("--input", metavar="TENSOR", help="a plain model's input (default: the one placeholder)")
    s.add_argument("--output", metavar="TENSOR", help="a plain model's output (default: told from the graph)")
    s.add_argument("--old-task", metavar="NAME", help="a plain model's task name (default: its directory's name)")
    s.add_argument("--old-data", nargs="+", action="extend", metavar="[TASK=]PATH",
                   help="labelled data of an old task (joint trains on it; ewc takes its Fisher from it; accuracy "
                        "after learning is measured on its test split)")
    s.add_argument("--replace", action="store_true", help="learn a task whose name exists again")
    s.add_argument("--epochs", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float, help="the new head's learning rate (default 0.003)")
    s.add_argument("--backbone-lr-mult", type=float, help="the backbone's rate as a multiple of --lr (default 1/3)")
    s.add_argument("--seed", type=int)
    s.add_argument("--lambda", dest="lam", type=float, help="lwf's distillation weight (default 1), ewc's penalty "
                                                            "weight on the Fisher divided by its mean (default 0.1)")
    s.add_argument("--temperature", type=float, help="lwf's distillation temperature T (default 2)")
    s.add_argument("--warmup-epochs", type=int, help="lwf: epochs with the backbone frozen first (default 5; fewer "
                                                     "than --epochs)")
    s.add_argument("--cache", metavar="DIR", help="lwf: where the old heads' recorded outputs are kept")
    s.add_argument("--fisher", metavar="FILE", help="ewc: a fisher.npz written for this model's weights")
    s.add_argument("--fisher-samples", type=int, help="ewc: examples per Fisher estimate (default 200)")
    s.add_argument("--fisher-labels", choices=["empirical", "sampled"], help="ewc: labels of the Fisher's gradients")
    s.add_argument("--online", action="store_true", default=None, help="ewc: one decayed Fisher for all old tasks")
    s.add_argument("--gamma", type=float, help="online ewc's decay (default 1)")
    s.add_argument("--prune", type=float, help="packnet: fraction of the new task's weights freed (default 0.75)")
    s.add_argument("--prune-first", type=float, help="packnet: fraction of a plain model's weights freed "
                                                     "(default 0.5)")
    s.add_argument("--retrain-epochs", type=int, help="packnet: epochs after pruning (default half of --epochs)")
    s.add_argument("--threshold", type=float, help="piggyback: mask score threshold (default 0.005)")
    s.add_argument("--mask-init", type=float, help="piggyback: initial mask score (default 0.01)")
    s.add_argument("--mask-lr", type=float, help="piggyback: the mask scores' learning rate (default 1e-4)")
    s.add_argument("--allow-random", action="store_true",
                   help="accept features, or an old task's head (from the features to its output), whose values "
                        "differ between runs on one batch (dropout with keep_prob baked in): the written model's "
                        "answers then differ call to call and are not compared with those heads' (with lwf, the "
                        "targets it records for the old heads are one draw of their answers)")
    s.add_argument("--allow-batch-dependent", action="store_true",
                   help="accept features, or an old task's head (from the features to its output), whose value for "
                        "an example changes with the other examples of its batch (batch norm in training mode): the "
                        "written model's answer for an example then depends on the examples served with it")
    finish(s, cmd_learn_task, "tags", "quiet", "json")


def _combine_parser(sub):
    s = sub.add_parser("combine", help="two or more frozen classifiers side by side, one new head over the union "
                                       "of their classes")
    s.add_argument("--model", required=True, action="append", help="a model (repeat: A's classes come first)")
    s.add_argument("--features", action="append", metavar="TENSOR",
                   help="the tensor its head reads (one per --model, in order, or one for all); none given, or '' "
                        "for one model: the one its model.json names (models written by combine or add-class)")
    s.add_argument("--input", metavar="TENSOR", help="the models' input (default: the one placeholder)")
    s.add_argument("--data", required=True, help=".npz with x and y (labels in the union's order) or x only "
                                                 "(learn from the models' own outputs)")
    s.add_argument("--out", required=True, metavar="DIR", help="the directory to write (must not exist)")
    s.add_argument("--names", help="the models' scopes, comma-separated (default: their directories' names)")
    s.add_argument("--balance", choices=["prior", "logits", "confidence", "equal"],
                   help="without labels: how the models' answers make the target (default prior: the targets' mean "
                        "over --data matches --prior)")
    s.add_argument("--prior", metavar="W,W,...", help="with --balance prior: the union's classes' frequencies in "
                                                      "--data, one weight per class in order (default: equal)")
    s.add_argument("--weight-decay", type=float, help="weight_decay x sum of the head's squared weights is added "
                                                      "to the loss (default 0.01)")
    s.add_argument("--epochs", type=int, help="default 300")
    s.add_argument("--lr", type=float, help="default 0.003")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--allow-random", action="store_true",
                   help="accept features whose values differ between runs on one batch (dropout with keep_prob "
                        "baked in): the written model's answers then differ call to call; without labels, a model's "
                        "head (from its features to its output) that does: the targets are then one draw of its "
                        "answers")
    s.add_argument("--allow-batch-dependent", action="store_true",
                   help="accept features whose value for an example changes with the other examples of its batch "
                        "(batch norm in training mode): the written model's answer for an example then depends on "
                        "the examples served with it; without labels, a model's head that does: the targets then "
                        "depend on which examples shared a batch")
    finish(s, cmd_combine, "tags", "quiet", "json", balance="prior")


def _add_class_parser(sub):
    s = sub.add_parser("add-class", help="a new version of a classifier with one more class, learned from a few "
                                         "examples")
    s.add_argument("dir", metavar="DIR", help="a model written by combine or add-class, or any classifier whose last layer "
                                          "is one dense layer, given --features (it is not changed)")
    s.add_argument("--data", required=True, help="examples of the new class (.npz with x)")
    s.add_argument("--name", required=True, help="the new class's name (it becomes the last index)")
    s.add_argument("--out", required=True, metavar="DIR2", help="the directory to write (must not exist)")
    s.add_argument("--features", metavar="TENSOR", help="the tensor the last layer reads (default: from model.json)")
    s.add_argument("--output", metavar="TENSOR", help="the last layer's output, its logits (default: from model.json, "
                                                    "else told from the graph)")
    s.add_argument("--reference", metavar="DATA", help="inputs whose answers are kept (default: the data combine "
                                                       "used)")
    s.add_argument("--steps", type=int, help="full-batch training steps (default 300)")
    s.add_argument("--lr", type=float, help="default 0.01")
    s.add_argument("--balance", type=float, help="the loss's weight on the new examples (default 0.1)")
    s.add_argument("--seed", type=int)
    s.add_argument("--allow-random", action="store_true",
                   help="accept features whose values differ between runs on one batch (dropout with keep_prob "
                        "baked in): the written model's answers then differ call to call")
    s.add_argument("--allow-batch-dependent", action="store_true",
                   help="accept features whose value for an example changes with the other examples of its batch "
                        "(batch norm in training mode): the written model's answer for an example then depends on "
                        "the examples served with it")
    finish(s, cmd_add_class, "tags", "json")
