"""Every sub-command's translated library messages name only that command's own options and no
Python argument (``word=``): the library raises in argument words, ``describe_error`` says the
command's flags, and a flag the command lacks (or an argument left untranslated) is a defect."""
import argparse
import os
import re

import pytest

from graphsurgeon._src.cli.messages import FLAGS, describe_error
from graphsurgeon._src.cli.parsers import build_parser
from graphsurgeon._src.errors import ConfigError

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?![\w])")
ARGUMENT = re.compile(r"(?<![\w-])[a-z][a-z0-9_]*=(?!=)")  # a Python keyword argument: ``shard_size=``
# what may say ``word=``: a flag's NAME=VALUE (``--feed scale=VALUE``) and a call in Python the message
# suggests (``graphsurgeon.restore(prefix, graph=your_graph)``)
CLI_OR_PYTHON = re.compile(r"--[a-z][\w-]* [^\s=]+=\S*|graphsurgeon\.\w+\([^)]*\)")
# a flag glued to Python syntax (``--train-feed{'scale': ...}``), or an argument's bare name (``each old_data``)
GLUED = re.compile(r"(?<![\w-])--[a-z][\w-]*[{\[(]")
# another command's command line a message suggests (``graphsurgeon thaw g.pb --scopes a --out DIR``), up to a comma
OTHER_COMMAND = re.compile(r"graphsurgeon ([a-z][a-z-]*)( [^,;]*)")
BARE = re.compile(r"(?<![\w-])(?:" + "|".join(sorted({k for k in FLAGS if "_" in k} | {"train_feeds"})) + r")\b")


def command_options() -> dict:
    """``{command: {its --options}}`` from the parser ``main`` builds."""
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {o for a in s._actions for o in a.option_strings} for name, s in sub.choices.items()}


OPTIONS = command_options()
MODELS = ("merge-heads", "add-head", "learn-task", "combine", "add-class")  # the commands that load task models
TRAINING = ("plan", "retrain")  # (plan runs retrain's restore and feeds checks)
# (commands that can show it, the library's message as raised at its site)
MESSAGES = [
    (("plan", "retrain"), "output=add_3: 1 class; a softmax over one class has nothing to learn (loss 0, no "
                          "gradient), and retrain trains a softmax: give 2 or more classes (a yes/no sigmoid output: a "
                          "new head on the layer below it, head=CUT:2)"),
    (("cache",), "shard_size=0: expected an integer >= 1"),
    (("cache",), "augment=-1: expected an integer >= 0"),
    (("cache",), "augment=70000: at most 60000 distorted copies per image"),
    (("inspect", "cache", *TRAINING, *MODELS),
     "m/: no meta graph with tags ['serve']; it has [['train']] (pass tags=...)"),
    (("retrain",), "c/: train_feeds={'scale': VALUE} changes placeholder 'scale' below the cached tensor 'f:0', "
                   "whose values were computed once with its feeds= value; training from the cache cannot change them: "
                   "leave it out of train_feeds=, or train from the data"),
    (("cache", *TRAINING), "'f:0' also needs placeholder keep_prob [] float32; give its value in "
                           "feeds={'NAME': VALUE} (a number, true/false, or an .npy file; train_feeds={'NAME': VALUE} "
                           "if training differs, e.g. keep_prob)"),
    (("cache", *TRAINING), "feed 'x': 'x' is the input of 'f' (the only placeholder it reads), which the data feeds; "
                           "it cannot also be fed a constant: leave it out of feeds="),
    (("cache", *TRAINING), "feed 'x': 'x' is the input (input=x), which the data feeds; it cannot also be fed a "
                           "constant: leave it out of feeds="),
    (("cache", *TRAINING), "feeds= gives a value to every placeholder 'f' reads (x, y), its input among them, which "
                           "the data feeds and cannot also be fed a constant: leave the input out of feeds="),
    (MODELS, "m/: features=f:0 reads 2 placeholders (a, b); name the input with input="),
    (MODELS, "m/: cannot tell the model's output above features=f:0 (candidates: none); name it with output="),
    (MODELS, "m/: output=logit is not a tensor of this model; closest: logits"),
    (MODELS, "m/m.keras: a Keras 3 .keras file; graphsurgeon reads tf_keras .h5 files and Keras-made SavedModels "
             "(save the model with tf_keras as .h5 or as a SavedModel directory)"),
    (MODELS, "m/: features=hidden2/Tan is not a tensor of this model; closest: hidden2/Tanh"),
    (MODELS, "m/: the input x:0 is a scalar (shape []): its examples come in batches along axis 0, and a scalar has "
             "none; give input=TENSOR, a tensor with a batch axis"),
    (MODELS, "m/: features=f:0 is a scalar (shape []): its examples come in batches along axis 0, and a scalar has "
             "none; give features=TENSOR, a tensor with a batch axis"),
    (TRAINING, "checkpoint m/c: tensor 'hidden/w' holds 1 NaN value of 4 (a diverged run or a damaged file); "
               "every output computed from it would be NaN: restore another checkpoint, or drop it from the restore "
               "(rules=Rules(drop=['hidden/w'])) so that its variable is initialized anew"),
    (TRAINING, "lr_mult='hidden2=0.1': hidden2 matches only variables that do not train (hidden2/biases); make them "
               "train (trainable=hidden2) or leave the multiplier out"),
    (TRAINING, "lr_mult='hidden2=0.1': hidden2 matches only variables that start training at an unfreeze stage "
               "(hidden2/biases); that stage sets their multiplier: give it there (unfreeze=EPOCH:hidden2=0.1)"),
    (TRAINING, "lr_mult='hidden*=0.1' sets the multiplier of the 2 variables it matches that train from the first "
               "epoch; it ignores the 2 it matches that do not train (hidden1/biases, hidden1/weights); the 2 it "
               "matches that an unfreeze stage starts (hidden2/biases, hidden2/weights) take that stage's multiplier"),
    (TRAINING, "trainable=a b: m/g.pb holds no variables (a frozen graph: its weights are constants), so nothing of "
               "it can train; turn the weights to train into variables first: graphsurgeon.thaw('m/g.pb', ['a', 'b'], "
               "out_dir), then restore out_dir"),
    (("learn-task",), "m/ has 2 tasks: give each old_data= its task's name (old_data={'TASK': PATH}; "
                      "tasks: a, b)"),
    (("learn-task",), "old_data={'nosuch': PATH}: m/ has no such task (a, b)"),
    (("learn-task",), "old_data=o.npz: labels reach 3 but task 'a' has 2 classes"),
    (("inspect", "cache", *TRAINING, *MODELS),
     "checkpoint m/c has no m/c.meta graph; build the model in Python, then call graphsurgeon.restore(prefix, "
     "graph=your_graph) to restore into it by variable name (graphsurgeon inspect shows the checkpoint's names)"),
    (("learn-task", "merge-heads", "add-head"),
     "m/: the backbone reads placeholder 'p' besides its input x:0; only the input is fed the input (make it a "
     "PlaceholderWithDefault, or cut above it)"),
    (("retrain",), "data=d.npz and cache=c/: give one, not both (a cache holds the examples it was made from); to "
                   "train on new data, cache it first with generate_cache, or leave out cache= to train from the data"),
    (("retrain", "thaw", "cache"), "out_dir=afile/x: 'afile' is a file, not a directory"),
    (("retrain",), "c/ holds the tensor 'Relu_1:0', but the head reads 'Relu:0', which is not computed from it (a run "
                   "from a cache reads the cached tensor or a tensor above it): give head=Relu_1:2 for a new head on "
                   "the cached tensor, or cache 'Relu:0' with generate_cache"),
    (("retrain",), "c/ was made with feeds={'shift': VALUE} (float32[8] sha256 12a0db28b1d2), a value its manifest "
                   "records only by its digest: give the same value in feeds= (the .npy file it was made with)"),
    (("retrain",), "c/ was made under other settings than this model and run (feed scale 2.0 -> 3.0); its activations "
                   "are stale: regenerate it with generate_cache, or give the settings it was made with (input= and "
                   "feeds= left out are taken from the cache)"),
    (("retrain", "thaw", "cache"), "out_dir=o/x cannot be written: permission denied in /o"),
    (("retrain", "cache"), "out_dir=afile exists and is not a directory"),
    (("migrate",), "destination o/x cannot be written: /o is on a read-only file system"),
    (("cache", "retrain"), "data g.pb: a model file (a graph or a checkpoint), not data; expected an .npz (arrays x "
                           "and y) or an image folder (one sub-folder of images per class)"),
    (("cache",), "r.pb: not a readable TFRecord file (corrupted record at 0); expected an .npz (arrays x and y), an "
                 "image folder (one sub-folder of images per class) or TFRecord files of tf.train.Example"),
    (("inspect", "cache", *TRAINING, *MODELS), "o is laid out as retrain's output directory, but its saved_model/ "
                                               "holds no saved_model.pb: pass o/checkpoint (the checkpoint with its "
                                               "meta graph)"),
    (("plan",), "depth=0: expected an integer >= 1 (how many name components make a box of the picture: 1 draws "
                "hidden1/MatMul in the box hidden1), or leave it out for the deepest that keeps the picture to 60 boxes"),
    (("inspect",), "depth=0: expected an integer >= 1 (how many name components make a scope: 1 groups "
                   "hidden1/weights under hidden1)"),
    (("retrain",), "c/shard-00000.npy: the data set's index names row 9 but the shard holds 4 rows; run "
                   "generate_cache again"),
    (("merge-heads",), "; pass group_backbones=True to build one backbone per group, or a larger atol= to accept "
                       "differences this small"),
    (("merge-heads",), "m/ exists; merged models are written to a new directory (choose another out=)"),
    (("add-head",), "m/: its name is not a version number; say where the new version goes (out=DIR)"),
    (("add-head",), "m/ + t/: duplicate task name 'a'; every task needs its own name (see name=)"),
    (("merge-heads", "add-head"), "cannot make probe inputs of dtype complex64 to verify the written model; pass "
                                  "verify=False to skip it"),
    (("add-class",), "m/ has no model.json naming its features: give features=TENSOR (the tensor the last layer "
                     "reads)"),
    (("add-class",), "name='' needs a name"),
    (("combine",), "names= gives 1 (a) for 2 models (m/, n/): expected one non-empty name per model"),
    (("combine",), "prior=1,0.5: used with balance='prior' only (got balance='logits')"),
    (("combine",), "models m/, n/ would share a scope (a, a); give each model its own name in names="),
    (("combine",), "prior=1,1: expected 9 positive weights, one per class of the union (A's classes, then B's)"),
    # a head's input that is random or depends on its batch-mates (retrain), and a tensor to cache (cache)
    (("retrain",), "the head's input 'f:0' differs between two runs on the same batch (keep_prob fed 0.5): it depends "
                   "on random op dropout/random_uniform/RandomUniform (its rate is read from the fed keep_prob), so the "
                   "exported model would answer differently on every call; cut below it, give the placeholder that "
                   "drives it its inference value in feeds=, or pass allow_random=True"),
    (("retrain",), "output 'logits:0' depends on the other examples in its batch (through moments/mean: batch "
                   "statistics such as tf.nn.moments or batch norm in training mode): the first training example "
                   "alone gives other values than in its batch, so the exported model's answer for an example would "
                   "depend on the examples served with it; cut below it, or pass allow_batch_dependent=True"),
    (("retrain",), "c/: the cached tensor 'f:0' is random (random op d/RandomUniform; its cache run found its "
                   "values differ between runs on one batch and was given allow_random=True): the exported model runs "
                   "it on every call; pass allow_random=True to accept it, or train from the data"),
    (("retrain",), "c/: the cached tensor 'f:0' depends on random op d/RandomUniform (its cache was made with "
                   "allow_random=True, before caches recorded their checks: whether a feed makes it deterministic "
                   "was not recorded, and a cache cannot run it): accepted by allow_random=True; the exported model "
                   "runs it on every call"),
    (("retrain",), "c/: the cached tensor 'f:0' depends on the other examples in its batch (through moments/mean; its "
                   "cache run found it and was given allow_batch_dependent=True): the exported model's answer for an "
                   "example would depend on the examples served with it; pass allow_batch_dependent=True to accept "
                   "it, or train from the data"),
    (("retrain",), "c/: the cached tensor 'f:0' reads an op that may mix the examples of a batch (moments/mean; its "
                   "cache was made before caches recorded their checks, maybe with allow_batch_dependent=True): "
                   "accepted by allow_batch_dependent=True; the exported model's answer for an example depends on the "
                   "examples served with it"),
    (("retrain",), "the head's input 'f:0' differs between runs on the same batch with its random op fed two "
                   "far-apart draws (two ordinary runs agreed) (keep_prob fed 0.999): it depends on random op "
                   "d/RandomUniform (its rate is read from the fed keep_prob), so the exported model would answer differently "
                   "on every call; cut below it, give the placeholder that drives it its inference value in "
                   "feeds=, or pass allow_random=True"),
    (("retrain",), "the head's input 'f:0' is random (two runs on one batch differed; random op d/RandomUniform): "
                   "accepted by allow_random=True; the exported model's answers differ call to call, and whether "
                   "they depend on the batch was not checked"),
    (("retrain",), "the head's input 'f:0' depends on its batch-mates (through moments/mean): accepted by "
                   "allow_batch_dependent=True; the exported model's answer for an example depends on the examples "
                   "served with it"),
    (("plan",), "'f' depends on random op d/RandomUniform: retrain runs it twice on the first training batch, fed "
                "as the export is fed, and refuses it if the runs differ unless allow_random=True"),
    (("plan",), "'f' reads an op that may mix the examples of a batch (moments/mean): retrain runs the first training "
                "example alone and refuses the cut if its values change (batch statistics); "
                "allow_batch_dependent=True accepts it"),
    (("cache",), "tensor 'f:0' differs between two runs on the same batch (keep_prob fed 0.5): it depends on random "
                 "op d/RandomUniform (its rate is read from the fed keep_prob), so its values cannot be cached; cache a "
                 "tensor below it, give the placeholder that drives it its inference value in feeds=, or pass "
                 "allow_random=True"),
    (("cache",), "c/: an earlier run into this cache found tensor 'f:0' random (its values differ between runs on one "
                 "batch) and its manifest records it (that run passed allow_random=True); pass allow_random=True to "
                 "extend the cache, or choose another out_dir=DIR"),
    (("cache",), "c/: an earlier run into this cache found tensor 'f:0' dependent on its batch-mates and its manifest "
                 "records it (that run passed allow_batch_dependent=True); pass allow_batch_dependent=True to extend "
                 "the cache, or choose another out_dir=DIR"),
    (("cache",), "tensor 'f:0' depends on the other examples in its batch (through moments/mean: batch statistics "
                 "such as tf.nn.moments or batch norm in training mode), so cached values would depend on how the "
                 "data was batched; cache a tensor below it, or pass allow_batch_dependent=True"),
]
CASES = [(c, m) for commands, m in MESSAGES for c in commands]


def test_the_table_names_real_commands():
    assert {c for c, _ in CASES} <= set(OPTIONS)


@pytest.mark.parametrize("command,message", CASES, ids=[f"{c}:{m[:40]}" for c, m in CASES])
def test_a_commands_messages_name_its_own_flags_and_no_argument(command, message):
    said = describe_error(ConfigError(message), command)
    for m in OTHER_COMMAND.finditer(said):  # a suggested command line names that command's own flags
        if m.group(1) in OPTIONS:
            assert set(FLAG.findall(m.group(2))) <= OPTIONS[m.group(1)], f"{m.group(1)} lacks a flag of: {said}"
    lacking = [f for f in FLAG.findall(OTHER_COMMAND.sub("", said)) if f not in OPTIONS[command]]
    assert not lacking, f"{command} has no {', '.join(lacking)}: {said}"
    left = ARGUMENT.findall(CLI_OR_PYTHON.sub("", said))
    assert not left, f"{command}: Python argument(s) {', '.join(left)} left in: {said}"
    assert not GLUED.findall(said) and not BARE.findall(said), f"{command}: Python words left in: {said}"
    others = [c for c in OPTIONS if "-" in c and c != command and re.search(rf"(?<![\w-]){c}(?![\w-])", said)]
    assert not others, f"{command} shows a message naming {', '.join(others)}: {said}"
    assert "_src." not in said, said


def test_the_check_fails_on_a_flag_the_command_lacks_and_on_an_untranslated_argument():
    with pytest.raises(AssertionError, match="thaw lacks a flag"):  # another command's line with a wrong flag
        test_a_commands_messages_name_its_own_flags_and_no_argument("plan", "run graphsurgeon thaw g.pb --scope a, then")
    assert [f for f in FLAG.findall(describe_error(ConfigError("pass out=DIR"), "inspect"))
            if f not in OPTIONS["inspect"]] == ["--out"]
    assert ARGUMENT.findall(describe_error(ConfigError("see nosuch_arg=1; a >= 1"), "cache")) == ["nosuch_arg="]


def _stderr(argv, capsys):
    from graphsurgeon._src.cli import main

    capsys.readouterr()
    assert main(argv + ["--verbose"]) == 2
    return [x for x in capsys.readouterr().err.splitlines() if x.startswith("graphsurgeon")]


def test_the_reproduced_cases_say_the_commands_flags(seed004, npz, tmp_path, capsys):
    prefix = seed004[0]
    d = os.path.dirname(prefix)
    assert _stderr(["cache", "--model", prefix, "--cut", "hidden2/Relu", "--data", npz, "--out", str(tmp_path / "c"),
                    "--shard-size", "0"], capsys) == ["graphsurgeon cache: error: --shard-size 0: expected an integer >= 1"]
    assert _stderr(["learn-task", "--model", prefix, "--features", "hidden2/Relu", "--data", npz, "--task", "t",
                    "--method", "lwf", "--out", str(tmp_path / "o"), "--old-data", f"nosuch={npz}"], capsys) == [
        f"graphsurgeon learn-task: error: --old-data nosuch=PATH: {prefix} has no such task ({os.path.basename(d)})"]
    # add-class takes its features from --features or model.json: the message names the model's features
    assert _stderr(["add-class", d, "--data", npz, "--name", "n", "--out", str(tmp_path / "a"), "--features",
                    "hidden2/Tan"], capsys) == [
        f"graphsurgeon add-class: error: {d}: the model's features hidden2/Tan is not a tensor of this model; closest: "
        "hidden2, hidden2/biases, hidden2/MatMul, hidden2/Relu, hidden2/BiasAdd"]
    assert not any(os.path.exists(tmp_path / n) for n in ("c", "o", "a"))


@pytest.mark.parametrize("argv,line", [
    (["retrain", "--model", "m", "--out", "o", "--x"], "graphsurgeon retrain: error: unrecognized arguments: --x"),
    (["inspect", "p", "extra", "--y"], "graphsurgeon inspect: error: unrecognized arguments: extra --y"),
    (["merge-heads", "a", "--features", "f", "--out", "o", "--nope=1"],
     "graphsurgeon merge-heads: error: unrecognized arguments: --nope=1"),
])
def test_an_unknown_flag_is_one_line_naming_the_command(argv, line, capsys):
    """argparse said ``graphsurgeon: error: unrecognized arguments`` without the command."""
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2 and capsys.readouterr().err.splitlines() == [line]
