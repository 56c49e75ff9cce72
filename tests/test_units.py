"""Unit tests for the small pieces a future bug would hide in: the --lr-mult and --unfreeze parsers,
stage sets, feeds, heads, the export signature, natural sort and the flag translation."""
import os

import numpy as np
import pytest
import tensorflow as tf

import graphsurgeon as gs
from graphsurgeon._src import feeds, train
from graphsurgeon._src.cli import to_flags
from graphsurgeon._src.select import natural_key

tf1 = tf.compat.v1


@pytest.mark.parametrize("item,expected", [
    ("hidden3=0.1", [("hidden3", 0.1)]),
    ("re:conv[12]=0", [("re:conv[12]", 0.0)]),
    ("a=b=2", [("a=b", 2.0)]),  # the last '=' separates the factor
])
def test_parse_lr_mult(item, expected):
    assert train.parse_lr_mult([item]) == expected


@pytest.mark.parametrize("bad", ["hidden3", "=0.1", "hidden3=x", "hidden3=-1"])
def test_parse_lr_mult_refuses(bad):
    with pytest.raises(gs.ConfigError, match="expected PATTERN=FACTOR"):
        train.parse_lr_mult([bad])


def test_parse_stage_forms():
    assert train.parse_stage("3:hidden2=0.1") == train.Stage(3, ["hidden2"], 0.1)
    assert train.parse_stage("5:hidden1") == train.Stage(5, ["hidden1"], 1.0)
    assert train.parse_stage({"epoch": 2, "scopes": ["a", "b"], "lr_mult": 0.5}) == train.Stage(2, ["a", "b"], 0.5)
    for bad in ("x:hidden2", "3:hidden2=y", {"scopes": ["a"]}):
        with pytest.raises(gs.ConfigError, match="unfreeze stage"):
            train.parse_stage(bad)


def test_multipliers_refuse_two_patterns_that_give_one_variable_different_multipliers():
    """The last match won: ``dis/D_w1=0.1 'dis/*=0.5'`` trained D_w1 at x0.5 and said nothing."""
    names = ["h1/w", "h2/b", "h2/w"]
    for order in (["h2=0.5", "h2/w=0.1"], ["h2/w=0.1", "h2=0.5"]):
        first, second = order
        with pytest.raises(gs.ConfigError, match=rf"^lr_mult='{first}' and lr_mult='{second}' both match h2/w, "
                                                 r"with different multipliers; give each variable one: narrow a "
                                                 r"pattern so that it leaves h2/w out$"):
            train.multipliers(names, order)
    assert train.multipliers(names, ["h2=0.5", "h2/w=0.5", "h1=0.1"]) == {"h1/w": 0.1, "h2/b": 0.5, "h2/w": 0.5}


def test_stage_sets_accumulate_and_respect_the_trainable_collection():
    names = ["h1/w", "h2/w", "h2/moving_mean", "h3/w"]
    sets = train.stage_sets({"h3/w": 1.0}, [train.Stage(4, ["h1"], 0.1), train.Stage(2, ["h2"], 0.5)], names,
                            trainable_names={"h1/w", "h2/w", "h3/w"})
    assert sets == [(0, {"h3/w": 1.0}), (2, {"h3/w": 1.0, "h2/w": 0.5}),
                    (4, {"h3/w": 1.0, "h2/w": 0.5, "h1/w": 0.1})]


@pytest.mark.parametrize("value,shape,batch,expected", [
    (np.asarray(0.5), [], None, np.asarray(0.5, np.float32)),
    (np.asarray(0.0), [None, 3], 2, np.zeros((2, 3), np.float32)),
    (np.arange(3.0), [None, 3], 2, np.tile(np.arange(3.0), (2, 1)).astype(np.float32)),
    (np.ones((1, 3)), [None, 3], 4, np.ones((4, 3), np.float32)),
])
def test_feed_broadcast(value, shape, batch, expected):
    with tf.Graph().as_default():
        t = tf1.placeholder(tf.float32, shape, name="p")
        got = feeds.broadcast("p", value, t, batch)
    assert got.dtype == np.float32 and np.array_equal(got, expected)


def test_feed_broadcast_refuses_what_cannot_fit():
    with tf.Graph().as_default():
        t = tf1.placeholder(tf.float32, [None, 3], name="p")
        with pytest.raises(gs.ConfigError, match="does not broadcast"):
            feeds.broadcast("p", np.zeros(4), t, 2)
        u = tf1.placeholder(tf.float32, [None, None], name="u")
        with pytest.raises(gs.ConfigError, match="cannot fill its unknown dimension"):
            feeds.broadcast("u", np.zeros(4), u, 2)


def test_parse_feeds_strings_and_npy(tmp_path):
    np.save(tmp_path / "s.npy", np.arange(3, dtype=np.float32))
    got = feeds.parse_feeds({"keep_prob:0": "1.0", "is_training": "false", "state": str(tmp_path / "s.npy")})
    assert got["keep_prob"] == 1.0 and got["is_training"] == np.asarray(False)
    assert np.array_equal(got["state"], np.arange(3, dtype=np.float32))
    with pytest.raises(gs.ConfigError, match="expected a number, true/false or an .npy file"):
        feeds.parse_feeds({"k": "lots"})
    with pytest.raises(gs.ConfigError, match="cannot read the .npy file"):
        feeds.parse_feeds({"k": str(tmp_path / "missing.npy")})


def test_padding_repeats_rows_and_counts_the_real_ones():
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [4, 2])
        f = feeds.Feeder(None, x, {}, 4)
        padded, n = f.pad(np.arange(6.0).reshape(3, 2))
    assert n == 3 and padded.tolist() == [[0, 1], [2, 3], [4, 5], [0, 1]]


def test_head_shapes_pooling_and_names(seed004):
    prefix, _, _ = seed004
    m = gs.restore(prefix, outputs=["hidden2/Relu"], values=False)
    head = gs.add_head(m, "hidden2/Relu", 3, hidden=[7], activation="tanh", scope="h")
    assert head.variables == ["h/dense_0/bias", "h/dense_0/kernel", "h/logits/bias", "h/logits/kernel"]
    assert head.logits.shape.as_list() == [None, 3] and m.status["h/logits/kernel"] == "new"
    with pytest.raises(gs.ConfigError, match="scope 'h' already exists"):
        gs.add_head(m, "hidden2/Relu", 3, scope="h")
    with pytest.raises(gs.ConfigError, match="num_classes must be >= 1"):
        gs.add_head(m, "hidden2/Relu", 0, scope="h2")
    g = tf.Graph()
    with g.as_default():
        tf1.placeholder(tf.float32, [None, 5, 5, 4], name="maps")
    model = gs.Model(g, None, None)
    pooled = gs.add_head(model, "maps", 2, scope="p")
    assert pooled.features.op.type == "Mean" and pooled.features.shape.as_list() == [None, 4]
    with g.as_default():
        tf1.placeholder(tf.float32, [None, 1, 1, None], name="open")
        tf1.placeholder(tf.float32, [None, None, None, 4], name="anysize")
    with pytest.raises(gs.ConfigError, match=r"unknown inner dimensions \[1, 1, None\]; a head needs the last dim"):
        gs.add_head(model, "open", 2, scope="o", pool="avg")  # pooling would not help: no hint to pool
    with pytest.raises(gs.ConfigError, match=r"unknown inner dimensions \[None, None, 4\]; use pool='avg'"):
        gs.add_head(model, "anysize", 2, scope="a", pool="flatten")


def test_export_signature(seed004, tmp_path):
    prefix, x, _ = seed004
    with gs.restore(prefix, outputs=["hidden2/Relu"]) as m:
        res = gs.export(m, str(tmp_path / "e"), inputs={"inputs": "X"}, outputs={"features": "hidden2/Relu"})
        want = m.run("hidden2/Relu", {"X": x[:3]})
    assert res.inputs == {"inputs": "X:0"} and res.outputs == {"features": "hidden2/Relu:0"}
    with tf.Graph().as_default() as g, tf1.Session(graph=g) as s:
        meta = tf1.saved_model.loader.load(s, ["serve"], res.saved_model)
        sig = meta.signature_def["serving_default"]
        assert sig.method_name == "tensorflow/serving/predict"
        assert list(sig.inputs) == ["inputs"] and list(sig.outputs) == ["features"]
        np.testing.assert_array_equal(s.run(sig.outputs["features"].name, {sig.inputs["inputs"].name: x[:3]}), want)
    assert sorted(os.listdir(tmp_path / "e")) == ["checkpoint", "saved_model"]


def test_export_refuses_a_missing_tensor_and_an_input_no_output_reads(seed004, tmp_path):
    # they were KeyErrors about another tensor ("The name 'X:0' refers to a Tensor which does not exist") once
    # pruning to the outputs had dropped it
    with gs.restore(seed004[0]) as m:
        with pytest.raises(gs.TensorNotFoundError, match=r"^no op 'hidden2/Relu_9' in the graph; closest: hidden2/Relu"):
            gs.export(m, str(tmp_path / "a"), inputs={"inputs": "X"}, outputs={"f": "hidden2/Relu_9"})
        with pytest.raises(gs.TensorNotFoundError, match=r"^no op 'Y' in the graph"):
            gs.export(m, str(tmp_path / "b"), inputs={"inputs": "Y"}, outputs={"f": "hidden2/Relu"})
        with pytest.raises(gs.ConfigError, match=r"^inputs=\{'h': 'hidden2/Relu:0'\}: no output \(hidden1/Relu:0\) "
                                                 r"is computed from it; leave it out of inputs=$"):
            gs.export(m, str(tmp_path / "c"), inputs={"inputs": "X", "h": "hidden2/Relu"},
                      outputs={"f": "hidden1/Relu"})
    assert not os.listdir(tmp_path)


def test_natural_key_and_flag_translation():
    assert sorted(["V_10", "V_2", "V_1", "V"], key=natural_key) == ["V", "V_1", "V_2", "V_10"]
    assert to_flags("pass allow_missing=True") == "pass --allow-missing"
    assert to_flags("input=x:0 does not feed; out_dir=o") == "--input x:0 does not feed; --out o"
    assert to_flags("my_input=3 and allow_missing_x=True") == "my_input=3 and allow_missing_x=True"


def test_cache_messages_name_arguments_and_the_cli_says_flags():
    from graphsurgeon._src.cache.beam import describe_failure
    from graphsurgeon._src.storage.cacheshards import REPAIR, REPAIR_HINT

    assert REPAIR_HINT == "run generate_cache again with repair=True"
    assert to_flags(REPAIR) == "run the cache command again with --repair (the index is rebuilt from the data)"
    assert to_flags("x: its shards were made elsewhere; choose another out_dir=DIR or delete this one") == \
        "x: its shards were made elsewhere; choose another --out DIR or delete this one"
    lib = describe_failure(Exception("ModuleNotFoundError: No module named 'graphsurgeon'"), "/c")
    assert "(for example beam_args=['--setup_file=PATH/setup.py'], or a worker container that has it)" in lib
    assert "(for example --beam-args --setup_file=PATH/setup.py, or a worker container that has it)" in to_flags(lib)


@pytest.mark.parametrize("reader", ["combine", "add_class"])
def test_x_only_npz_of_combine_and_add_class_is_header_checked(tmp_path, reader):
    """combine and add-class read an ``.npz`` of ``x`` alone; a header declaring 2**40 rows is refused
    before numpy allocates them (it raised MemoryError when their reader skipped the check)."""
    import zipfile

    from graphsurgeon._src import add_class, combine

    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z, z.open("x.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 40, 8)})
        f.write(np.zeros(64, np.float32).tobytes())
    read = (lambda p: combine._data(p)) if reader == "combine" else (lambda p: add_class._inputs(p, "data"))
    with pytest.raises(gs.DataError, match=r"huge\.npz \(array 'x'\).*declares"):
        read(str(path))


def test_reference_variables_become_resource_variables_unless_an_op_needs_the_reference():
    from graphsurgeon._src.export import to_resource_variables

    def meta_of(training):
        g = tf.Graph()
        with g.as_default():
            v = tf.compat.v1.get_variable("w", [2], initializer=tf.compat.v1.ones_initializer(), use_resource=False)
            tf.identity(v * 2.0, name="out")
            if training:
                tf.compat.v1.assign_add(v, [1.0, 1.0], name="step")
            return tf.compat.v1.train.export_meta_graph(graph=g)

    meta = meta_of(training=True)
    before = meta.SerializeToString()
    assert not to_resource_variables(meta) and meta.SerializeToString() == before  # AssignAdd needs the reference
    g = tf.Graph()
    with g.as_default():  # an Assign whose value is another reference variable itself (not its read)
        a, b = (tf.compat.v1.get_variable(n, [2], use_resource=False) for n in ("a", "b"))
        tf.compat.v1.assign(a, b._ref(), name="copy")
        copy = tf.compat.v1.train.export_meta_graph(graph=g)
    before = copy.SerializeToString()
    assert not to_resource_variables(copy) and copy.SerializeToString() == before
    meta = meta_of(training=False)
    assert to_resource_variables(meta)
    ops = {n.name: n.op for n in meta.graph_def.node}
    assert (ops["w"], ops["w/read"], ops["w/Assign"]) == ("VarHandleOp", "ReadVariableOp", "AssignVariableOp")
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.train.import_meta_graph(meta)
        (w,) = tf.compat.v1.global_variables()
        with tf.compat.v1.Session() as s:
            s.run(w.initializer)
            assert s.run("out:0").tolist() == [2.0, 2.0] and "Resource" in type(w).__name__


def test_an_export_default_never_takes_the_name_of_an_op_the_graph_has():
    """A placeholder (or a placeholder_with_default) given a feed becomes a PlaceholderWithDefault of a
    constant named NAME/default; a graph that already has an op of that name is refused, naming it
    (without the check, the graph got a second node of that name)."""
    from graphsurgeon._src.errors import ConfigError
    from graphsurgeon._src.export import export_meta_graph

    class Model:  # what export_meta_graph reads of a restored model
        def __init__(self, graph):
            self.graph = graph

        def tensor(self, name):
            return self.graph.get_tensor_by_name(name if ":" in name else name + ":0")

    for make in (lambda: tf.compat.v1.placeholder(tf.float32, [], name="p"),
                 lambda: tf.compat.v1.placeholder_with_default(2.0, [], name="p")):
        g = tf.Graph()
        with g.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
            tf.identity(x * make() + tf.constant(1.0, name="p/default"), name="out")
        with pytest.raises(ConfigError, match=r"^cannot add the default of 'p': an op 'p/default' exists$"):
            export_meta_graph(Model(g), {"x": "x:0"}, {"out": "out:0"}, {"p": 3.0})
        g = tf.Graph()
        with g.as_default():  # without the clash, the default is the value fed
            x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
            tf.identity(x * make(), name="out")
        meta, _, _ = export_meta_graph(Model(g), {"x": "x:0"}, {"out": "out:0"}, {"p": 3.0})
        nodes = {n.name: n for n in meta.graph_def.node}
        assert nodes["p"].op == "PlaceholderWithDefault" and list(nodes["p"].input) == ["p/default"]
        assert tf.make_ndarray(nodes["p/default"].attr["value"].tensor) == 3.0


def test_predict_signature_is_tensorflows_without_its_deprecated_helper():
    """storage.signatures builds the SignatureDef TensorFlow's predict_signature_def builds (which logs
    that build_tensor_info is deprecated): the same proto for known, partly known and unknown shapes."""
    from graphsurgeon._src.storage.signatures import predict_signature

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        s = tf.compat.v1.placeholder(tf.string, None, name="s")
        ins, outs = {"inputs": x, "s": s}, {"y": tf.identity(x[:, :2] * 2, name="y"), "n": tf.shape(x, out_type=tf.int64)}
        ours = predict_signature(ins, outs)
        theirs = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(inputs=ins, outputs=outs)
    assert ours == theirs and ours.method_name == "tensorflow/serving/predict"
    assert ours.inputs["s"].tensor_shape.unknown_rank and ours.outputs["n"].dtype == tf.int64.as_datatype_enum
