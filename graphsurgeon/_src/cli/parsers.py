"""The argument parser: one sub-command per verb, each with its flags and an example."""
from __future__ import annotations

import argparse
import sys

from graphsurgeon._src.cli.commands import (
    cmd_cache,
    cmd_demo,
    cmd_diff,
    cmd_inspect,
    cmd_migrate,
    cmd_plan,
    cmd_retrain,
    cmd_thaw,
)
from graphsurgeon._src.cli.task_parsers import _continual_parsers, _multihead_parsers, finish


class _Parser(argparse.ArgumentParser):
    commands: dict = {}  # the top parser's sub-command parsers, by name

    def error(self, message):  # one line, exit 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but arguments no parser took are reported by the sub-command's parser, so the
        line names the command (``graphsurgeon retrain: error: unrecognized arguments: --x``)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.commands.get(getattr(parsed, "command", None), self).error(
                f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def _model_args(p):
    p.add_argument("--model", required=False, help="checkpoint prefix or directory, .meta, .pb, SavedModel dir, "
                                                     "retrain's output dir")
    p.add_argument("--trainable", nargs="+", action="extend", metavar="PAT", help="restored scopes that train")
    p.add_argument("--keep", nargs="+", action="extend", metavar="PAT",
                   help="restore only the checkpoint tensors these match (the others' variables start anew)")
    p.add_argument("--drop", nargs="+", action="extend", metavar="PAT",
                   help="checkpoint tensors not restored (their variables start anew)")
    for old in ("--exclude", "--include"):  # replaced; kept only to say so
        p.add_argument(old, nargs="+", action="extend", help=argparse.SUPPRESS)
    p.add_argument("--reinit", nargs="+", action="extend", metavar="PAT", help="layers re-initialized in place")
    p.add_argument("--head", metavar="CUT:N", help="cut at tensor CUT, new head with N classes")
    p.add_argument("--head-hidden", nargs="+", type=int, metavar="UNITS", help="hidden layers of the new head")
    p.add_argument("--head-activation", choices=["relu", "tanh", "sigmoid", "elu", "linear"],
                   help="activation of the head's hidden layers (default relu)")
    p.add_argument("--head-init", choices=["glorot_uniform", "glorot_normal", "he_normal", "truncated_normal"],
                   help="kernel initializer of the new head (default glorot_uniform)")
    p.add_argument("--pool", choices=["avg", "flatten"],
                   help="a cut of rank > 2 ([batch, 5, 5, 16]) becomes the head's features by averaging over its "
                        "inner axes (avg, default: 16 features) or by flattening (400 features)")
    p.add_argument("--output", metavar="TENSOR", help="existing logits to fine-tune (instead of --head)")
    p.add_argument("--input", metavar="TENSOR",
                   help="the tensor fed with the data (a placeholder, or any tensor such as a queue's output; "
                        "default: the one placeholder the cut reads)")
    p.add_argument("--rename", nargs="+", action="extend", metavar="REGEX=REPLACEMENT",
                   help="checkpoint names -> graph names by regex (re.sub), as migrate's --rename")
    p.add_argument("--map-scope", nargs="+", action="extend", metavar="CKPT/=GRAPH/",
                   help="restore checkpoint scope CKPT/ into graph scope GRAPH/")
    p.add_argument("--lr-mult", nargs="+", action="extend", metavar="PAT=F",
                   help="learning-rate multiplier of trainable variables (a pattern matching none is refused, as is "
                        "a variable two patterns give different multipliers)")
    p.add_argument("--unfreeze", nargs="+", action="extend", metavar="EPOCH:PAT[=F]",
                   help="after EPOCH epochs, PAT trains too (at multiplier F; plan's train column says "
                        "'from EPOCH+1')")
    p.add_argument("--feed", nargs="+", action="extend", metavar="NAME=VALUE",
                   help="value of another placeholder (keep_prob, is_training, an initial state) at inference: "
                        "a number, true/false, or an .npy file, broadcast to its shape")
    p.add_argument("--train-feed", nargs="+", action="extend", metavar="NAME=VALUE",
                   help="its value while training, if different")
    p.add_argument("--tags", nargs="+", help="SavedModel tags (default: serve)")
    p.add_argument("--restore-optimizer", action="store_true", default=None,
                   help="also restore the old run's optimizer slots and global_step")
    p.add_argument("--allow-missing", action="store_true", default=None,
                   help="initialize variables the checkpoint lacks")
    p.add_argument("--allow-cast", action="store_true", default=None,
                   help="restore values whose checkpoint dtype differs from the variable's, cast")
    p.add_argument("--allow-unsafe-ops", action="store_true", default=None,
                   help="run a graph that holds file-system or Python-callback ops")
    p.add_argument("--allow-random", action="store_true", default=None,
                   help="accept a cut whose values differ between runs on one batch (dropout with keep_prob "
                        "baked in), or a cache recorded so (retrain --cache): the exported model's answers then "
                        "differ call to call")
    p.add_argument("--allow-batch-dependent", action="store_true", default=None,
                   help="accept a cut whose value for an example changes with its batch-mates (batch statistics), "
                        "or a cache recorded so (retrain --cache)")
    p.add_argument("--plan", dest="plan_file", metavar="FILE.toml", help="settings from a TOML plan file")


EXAMPLES = {
    "inspect": "graphsurgeon inspect run/model.ckpt-1000 --json",
    "plan": "graphsurgeon plan --model run/ --head hidden3/Relu:2 --trainable hidden3 --lr-mult hidden3=0.1\n"
            "  graphsurgeon plan --model run/ --map-scope hidden1/=encoder/hidden1/ --drop output",
    "retrain": "graphsurgeon retrain --model run/ --head hidden3/Relu:2 --trainable hidden3 --data new.npz "
               "--out retrained/",
    "cache": "graphsurgeon cache --model run/ --cut hidden2/Relu --data new.npz --out cache/\n"
             "  graphsurgeon retrain --model run/ --head hidden3/Relu:2 --cache cache/ --out retrained/",
    "migrate": "graphsurgeon migrate run/model.ckpt-1000 clean/model.ckpt --preset optimizer-slots "
               "--map-scope hidden1/=encoder/ --dry-run",
    "diff": "graphsurgeon diff run/model.ckpt-1000 clean/model.ckpt --json",
    "thaw": "graphsurgeon thaw frozen/graph.pb --scopes hidden3 output --out thawed/\n"
            "  graphsurgeon retrain --model thawed/ --head hidden3/Relu:2 --trainable hidden3 --data data.npz "
            "--out retrained/",
    "demo": "graphsurgeon demo --out demo-out/ --seeds 5 --json",
    "merge-heads": "graphsurgeon merge-heads tasks/ --features encoder/features --out serving/text/1",
    "add-head": "graphsurgeon add-head serving/text/1 new_task/model.ckpt-900    # writes serving/text/2",
    "remove-head": "graphsurgeon remove-head serving/text/2 sentiment           # writes serving/text/3",
    "learn-task": "graphsurgeon learn-task --model digits04/ --features hidden2/Relu --data digits59.npz "
                  "--task digits59 --method lwf --out continual/1",
    "combine": "graphsurgeon combine --model A/ --features hidden2/Relu --model B/ --features hidden2/Relu "
               "--data unlabelled.npz --out AB/",
    "add-class": "graphsurgeon add-class AB/ --data few.npz --name alien_bug --out ABC/",
}


def build_parser():
    """The ``graphsurgeon`` argument parser: one sub-command per verb, each with an example."""
    p = _Parser(prog="graphsurgeon", description="Surgery on legacy TensorFlow 1 models for transfer learning.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _inspect_parser(sub)
    _plan_parser(sub)
    _retrain_parser(sub)
    _cache_parser(sub)
    _migrate_parser(sub)
    _diff_parser(sub)
    _thaw_parser(sub)
    _multihead_parsers(sub)
    _continual_parsers(sub)
    _demo_parser(sub)
    p.commands = sub.choices
    for name, parser in sub.choices.items():
        if name in EXAMPLES:
            parser.epilog = "example:\n  " + EXAMPLES[name]
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for parser in [p, *sub.choices.values()]:
        top = parser is p
        parser.add_argument("--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                            help="also show TensorFlow's own log lines and warnings")
        parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                            help="on failure, print the Python traceback too")
    return p


def _inspect_parser(sub):
    s = sub.add_parser("inspect", help="variables, scopes, inputs and outputs of a checkpoint or graph")
    s.add_argument("path")
    s.add_argument("--depth", type=int, default=1, help="scope depth to group by")
    finish(s, cmd_inspect, "tags", "json")


def _plan_parser(sub):
    s = sub.add_parser("plan", help="dry run: what happens to every variable")
    _model_args(s)
    s.add_argument("--dot", metavar="FILE", help="write a picture of the surgery as Graphviz DOT text")
    s.add_argument("--svg", metavar="FILE", help="render that picture to SVG (needs Graphviz's dot on PATH)")
    s.add_argument("--depth", type=int,
                   help="scope depth of the picture's boxes, >= 1 (default: the deepest with <= 60 boxes); "
                        "only with --dot or --svg")
    finish(s, cmd_plan, "json")


def _retrain_parser(sub):
    s = sub.add_parser("retrain", help="restore, new head, train the chosen layers, export")
    _model_args(s)
    s.add_argument("--data", help=".npz (x, y) or an image folder (one sub-folder per class); or --cache")
    s.add_argument("--cache", metavar="DIR", help="train from a bottleneck cache made by 'graphsurgeon cache' "
                                                  "(instead of --data: giving both is refused); --input and the "
                                                  "--feed values below the cached tensor default to the cache's")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--epochs", type=int, help="epoch budget (default: 300 for a head from a cache, 30 for a head, "
                                               "20 when restored layers train)")
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float, help="learning rate (default 0.003 for a head alone, 0.001 when restored "
                                            "layers train)")
    s.add_argument("--optimizer", choices=["sgd", "momentum", "adam", "rmsprop"], help="default adam")
    s.add_argument("--seed", type=int)
    s.add_argument("--patience", type=int,
                   help="stop after this many epochs without a better validation accuracy (0: never); with N > 0, "
                        "the best epoch's trained values are exported")
    s.add_argument("--image-scale", choices=["unit", "inception", "raw"],
                   help="image folders: pixels to [0,1] (unit, default), [-1,1] (inception) or [0,255] (raw)")
    s.add_argument("--overwrite", action="store_true")
    finish(s, cmd_retrain, "quiet", "json")


def _cache_parser(sub):
    s = sub.add_parser("cache", help="run the frozen layers once over the data and store the bottleneck")
    s.add_argument("--model", required=True)
    s.add_argument("--cut", "--tensor", dest="cut", required=True, metavar="TENSOR",
                   help="the cut point: the tensor cached (the top frozen layer's output); --tensor is its old "
                        "spelling")
    s.add_argument("--data", required=True, help=".npz, image folder, or TFRecord file/glob of tf.train.Example")
    s.add_argument("--out", required=True, help="cache directory (created, or completed if it exists)")
    s.add_argument("--input", metavar="TENSOR",
                   help="the tensor fed with the data (default: the one placeholder the cut reads)")
    s.add_argument("--feed", nargs="+", action="extend", metavar="NAME=VALUE",
                   help="value of another placeholder: a number, true/false, or an .npy file")
    s.add_argument("--batch-size", type=int, help="examples per run (default: the batch the graph fixes, else 256)")
    s.add_argument("--shard-size", type=int, default=4096, help="examples per shard")
    s.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    s.add_argument("--augment", type=int, default=0, metavar="K", help="K distorted copies of each training image")
    s.add_argument("--flip-left-right", type=lambda v: v.lower() in ("1", "true", "yes"), default=None)
    s.add_argument("--random-crop", type=float, metavar="PCT")
    s.add_argument("--random-scale", type=float, metavar="PCT")
    s.add_argument("--random-brightness", type=float, metavar="PCT")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--image-scale", choices=["unit", "inception", "raw"], default="unit")
    s.add_argument("--image-feature", default="image/encoded", help="TFRecord feature with the image")
    s.add_argument("--label-feature", default="image/class/label", help="TFRecord feature with the label")
    s.add_argument("--tags", nargs="+")
    s.add_argument("--repair", action="store_true",
                   help="recompute shards that do not match the manifest and rebuild a damaged index of the data set")
    s.add_argument("--allow-random", action="store_true",
                   help="cache a tensor whose values differ between runs on one batch (dropout with keep_prob baked "
                        "in); the manifest records it and retrain --cache then needs --allow-random too")
    s.add_argument("--allow-batch-dependent", action="store_true",
                   help="cache a tensor whose value for an example changes with its batch-mates (batch statistics); "
                        "the manifest records it and retrain --cache then needs --allow-batch-dependent too")
    s.add_argument("--allow-cast", action="store_true", help="restore values of another dtype, cast")
    s.add_argument("--allow-unsafe-ops", action="store_true",
                   help="run a graph that holds file-system or Python-callback ops")
    s.add_argument("--runner", choices=["local", "beam"], default="local",
                   help="where the shards are computed: here, or on Apache Beam (pip install 'tf1-graphsurgeon[beam]')")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--json", action="store_true")
    s.add_argument("--beam-args", nargs=argparse.REMAINDER, metavar="ARG",
                   help="with --runner beam, the rest of the line: Beam pipeline options (default "
                        "--direct_running_mode=multi_processing --direct_num_workers=2)")
    s.set_defaults(func=cmd_cache)


def _migrate_parser(sub):
    s = sub.add_parser("migrate", help="rename, drop, keep, cast, merge checkpoints into a new one")
    s.add_argument("src")
    s.add_argument("dst", help="destination prefix (must not exist), or a directory: the base name of SRC's "
                               "checkpoint inside it (DIR/model.ckpt for SRC run/model.ckpt; DIR/variables for "
                               "a SavedModel or retrain's output)")
    s.add_argument("--rename", nargs="+", action="extend", metavar="REGEX=REPLACEMENT")
    s.add_argument("--map-scope", nargs="+", action="extend", metavar="OLD/=NEW/")
    s.add_argument("--drop", nargs="+", action="extend", metavar="PAT")
    s.add_argument("--keep", nargs="+", action="extend", metavar="PAT", help="keep only these (split out a scope)")
    s.add_argument("--cast", nargs="+", action="extend", metavar="PAT=DTYPE",
                   help="float16, bfloat16, float32, float64 (PAT matches each source's own names; the float tensors it "
                        "matches are cast, the others copied as they are)")
    s.add_argument("--merge", nargs="+", action="extend", metavar="OTHER[:PREFIX/]",
                   help="also copy every tensor of checkpoint OTHER, under PREFIX/ if given; the name rules, "
                        "--keep, --drop and --preset apply to SRC only")
    s.add_argument("--preset", nargs="+", action="extend",
                   metavar="NAME", help="optimizer-slots, rnn-cell-names, strip-scope=NAME")
    s.add_argument("--to", choices=["tf1", "tf2"], default="tf1",
                   help="tf2: what tf.train.Checkpoint(vars={name: variable}) writes")
    s.add_argument("--from", dest="from_format", choices=["tf1", "tf2"], default="tf1",
                   help="tf2: read an object-based checkpoint (or TF2 SavedModel variables) by variable name, "
                        "the optimizer's too (the table tags them: --preset optimizer-slots drops them); "
                        "what is not a variable (the object graph, save_counter) is not carried over, and the "
                        "table says so; tf1 (default): read any checkpoint by its keys (a TF2 one's object graph "
                        "is left out, and the table says so, unless every key it names is copied unchanged)")
    s.add_argument("--merge-partitions", action="store_true", help="join name/part_N tensors into one")
    s.add_argument("--dry-run", action="store_true", help="print the old -> new table; write nothing at all")
    v = s.add_mutually_exclusive_group()
    v.add_argument("--verify", choices=["sample", "full"], default="sample",
                   help="sample (default): keys, dtypes and shapes of all, bytes of every tensor under 1 MiB and a "
                        "seeded sample of larger ones; full: every byte of every tensor")
    v.add_argument("--no-verify", action="store_true", help="check nothing")
    d = s.add_mutually_exclusive_group()
    d.add_argument("--link", action="store_true",
                   help="always hard-link the sources' data files and write only an index (dropped tensors keep "
                        "their bytes there); the default links only when no byte is dropped or changed")
    d.add_argument("--copy", action="store_true", help="always write a new data file, never hard links")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    finish(s, cmd_migrate, "json")


def _diff_parser(sub):
    s = sub.add_parser("diff", help="tensors added, removed, renamed, changed between two checkpoints")
    s.add_argument("a")
    s.add_argument("b")
    finish(s, cmd_diff, "json")


def _thaw_parser(sub):
    s = sub.add_parser("thaw", help="turn a frozen graph's chosen weight constants back into variables")
    s.add_argument("path", metavar="GRAPH", help="a frozen GraphDef (.pb / .pbtxt)")
    s.add_argument("--scopes", nargs="+", action="extend", required=True, metavar="PAT",
                   help="weight-like constants to thaw (inspect lists them)")
    s.add_argument("--out", required=True, metavar="DIR", help="where to write model.ckpt and its meta graph")
    s.add_argument("--overwrite", action="store_true")
    finish(s, cmd_thaw, "json")


def _demo_parser(sub):
    s = sub.add_parser("demo", help="the embedded demo: a digits 0-4 model retrained for digits 5-9 with few "
                                    "labels; learning curve against training from scratch")
    s.add_argument("--out", default=None, help="where to write (default: a temporary directory)")
    s.add_argument("--seeds", type=int, default=3, metavar="N",
                   help="seeds per point of the learning curve (default 3)")
    s.add_argument("--canvas", type=int, default=12, metavar="PIXELS",
                   help="side (8..32) of the images the 8x8 digits are placed on at random (default 12; 8: "
                        "centred, as scikit-learn gives them)")
    s.add_argument("--json", action="store_true", help="print the learning curve and the outputs as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress display")
    s.set_defaults(func=cmd_demo)
