"""The graph scans of graphsurgeon/_src/determinism/scan.py on tiny graphs (no session, no disk):
random ops and ops that may mix a batch, in the graph and inside the functions its ops call."""
import types

import tensorflow as tf

from graphsurgeon._src.determinism import batch_mixing_ops, feedable_draws, random_ops_upstream

tf1 = tf.compat.v1


def _functional_graph():
    """x -> tf.cond (If: dropout of x minus its batch mean in the true branch) -> a tf.function (a
    StatefulPartitionedCall: noise, a sum over the batch, and a tf.cond of its own) -> a while loop
    (While: normal noise and a max over the batch each pass) -> 'out'; 'side' is a sum over axis 0
    of the 'flag' placeholder's data only."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 8], name="x")
        flag = tf1.placeholder_with_default(True, (), name="flag")
        h = tf.cond(flag, lambda: tf1.nn.dropout(x - tf.reduce_mean(x, 0), keep_prob=0.5), lambda: tf.identity(x))

        @tf.function
        def block(v):
            v = tf.cond(tf.reduce_sum(v) > 0, lambda: v + tf.random.uniform([8]), lambda: v)
            return v + tf.reduce_sum(v, 0)

        h = block(h)
        _, h = tf.while_loop(lambda i, v: i < 3,
                             lambda i, v: (i + 1, v + tf.reduce_max(v, 0) + tf.random.normal([8])), [0, h])
        tf.identity(h, name="out")
        tf.cond(flag, lambda: tf.reduce_sum(tf.ones([3, 8]), 0), lambda: tf.zeros([8]), name="side")
    ops = {op.type: op for op in g.get_operations()}
    assert {"If", "StatefulPartitionedCall", "While"} <= set(ops)  # functional control flow, not Switch/Merge
    return g


def _called(g, op, attr):
    return g.get_operation_by_name(op).get_attr(attr).name


def test_random_ops_inside_functions_are_named_with_the_function_and_the_op_that_calls_it():
    g = _functional_graph()
    model = types.SimpleNamespace(graph=g)
    block = _called(g, "StatefulPartitionedCall", "f")
    inner = [n for n in g.as_graph_def().library.function if n.signature.name == block][0]
    inner_if = [n for n in inner.node_def if n.op in ("If", "StatelessIf")][0]
    nested = inner_if.attr["then_branch"].func.name
    assert random_ops_upstream(model, "out:0") == sorted([
        f"dropout/random_uniform/RandomUniform in function '{_called(g, 'cond', 'then_branch')}' called by op 'cond'",
        f"random_uniform/RandomUniform in function '{nested}' in function '{block}' called by op "
        "'StatefulPartitionedCall'",
        f"random_normal/RandomStandardNormal in function '{_called(g, 'while', 'body')}' called by op 'while'",
    ])
    assert random_ops_upstream(model, "out:0", functions=False) == []
    assert feedable_draws(model, "out:0") == []  # an op inside a function cannot be fed
    assert random_ops_upstream(model, "side:0") == []


def test_batch_mixing_ops_inside_functions_are_named_when_the_input_reaches_them():
    g = _functional_graph()
    model = types.SimpleNamespace(graph=g)
    block = _called(g, "StatefulPartitionedCall", "f")
    assert batch_mixing_ops(model, "out:0", "x") == sorted([
        f"Max in function '{_called(g, 'while', 'body')}' called by op 'while'",
        f"Mean in function '{_called(g, 'cond', 'then_branch')}' called by op 'cond'",
        f"Sum in function '{block}' called by op 'StatefulPartitionedCall'",  # over every axis: the cond's predicate
        f"Sum_1 in function '{block}' called by op 'StatefulPartitionedCall'",
    ])
    # the If's predicate is not passed to its branches: the branch's mean does not read 'flag'
    assert batch_mixing_ops(model, "out:0", "flag") == sorted([
        f"Max in function '{_called(g, 'while', 'body')}' called by op 'while'",
        f"Sum in function '{block}' called by op 'StatefulPartitionedCall'",
        f"Sum_1 in function '{block}' called by op 'StatefulPartitionedCall'",
    ])
    assert batch_mixing_ops(model, "side:0", "flag") == []  # its sum reads constants only


def test_a_loop_carries_the_input_into_a_variable_that_starts_without_it():
    """A while loop's accumulator starts at zeros and takes the input on its first pass: its max over
    the batch mixes the input's examples from the second pass on."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        _, acc, _ = tf.while_loop(lambda i, a, v: i < 3,
                                  lambda i, a, v: (i + 1, v + tf.reduce_max(a, 0), v), [0, tf.zeros([2, 4]), x],
                                  shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, 4]),
                                                    tf.TensorShape([None, 4])])
        tf.identity(acc, name="out")
    body = _called(g, "while", "body")
    assert batch_mixing_ops(types.SimpleNamespace(graph=g), "out:0", "x") == [
        f"Max in function '{body}' called by op 'while'"]


def test_axis0_doubt_is_a_guess_from_static_shapes_and_transposes():
    from graphsurgeon._src.determinism import axis0_doubt

    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 5, 3], name="x")
        tm = tf.transpose(x, [1, 0, 2], name="time_major")  # [5, ?, 3]
        tf.reshape(tm, [-1, 3], name="rows")  # [?, 3]: time * batch rows
        tf.transpose(tm, [1, 0, 2], name="batch_major")
        tf.transpose(x, [0, 2, 1], name="channels_first")
        v = tf1.placeholder(tf.float32, [None, None, 3], name="v")  # time unknown too
        tf.transpose(v, [1, 0, 2], name="v_time_major")
        f = tf1.placeholder(tf.float32, [4, 4, 3], name="f")  # batch fixed at the number of steps
        tf.transpose(f, tf.concat([[1, 0], tf.range(2, 3)], 0), name="f_time_major")  # a computed constant perm
    model = types.SimpleNamespace(graph=g)
    doubt = (lambda t, inp: axis0_doubt(model, t, g.get_tensor_by_name(inp)))
    assert doubt("time_major:0", "x:0") == "its static size 5 is not the input's batch ('x:0' is [?, 5, 3])"
    assert doubt("rows:0", "x:0") == "transpose 'time_major' moves the input's axis 0 to axis 1"
    assert doubt("v_time_major", "v:0") == "transpose 'v_time_major' moves the input's axis 0 to axis 1"
    assert doubt("f_time_major:0", "f:0") == "transpose 'f_time_major' moves the input's axis 0 to axis 1"
    assert doubt("batch_major:0", "x:0") is None  # moved back
    assert doubt("channels_first:0", "x:0") is None
    assert doubt("x:0", "x:0") is None


def test_axis0_doubt_follows_the_batch_through_unstack_and_split_steps():
    """A static_rnn's steps cut from a time-major tensor are batch-major again: tf.unstack on axis 0,
    or (the TF 1.0 way, the lstm_aplain's) rows [time * batch, ...] split into time pieces."""
    from graphsurgeon._src.determinism import axis0_doubt

    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 5, 3], name="x")
        tm = tf.transpose(x, [1, 0, 2], name="time_major")  # [5, ?, 3]
        steps = tf.unstack(tm, axis=0, name="steps")  # 5 x [?, 3]
        tf.identity(steps[4] * 2.0, name="last")
        rows = tf.reshape(tm, [-1, 3], name="rows")  # [?, 3]: time * batch rows
        split = tf.split(tf.matmul(rows, tf.ones([3, 4])), 5, axis=0, name="split")  # 5 x [?, 4]
        tf.concat([split[4], split[0]], 1, name="cell")
        tf.split(rows, 2, axis=0, name="halves")  # 2 pieces of 5 steps: not one step's batch each
        tf.split(rows, [1, 2], axis=1, name="columns")  # along the units
        tf.unstack(x, axis=1, name="x_steps")  # batch-major unstack: the batch stays on axis 0
    model = types.SimpleNamespace(graph=g)
    doubt = (lambda t, inp="x:0": axis0_doubt(model, t, g.get_tensor_by_name(inp)))
    assert doubt("steps:4") is None
    assert doubt("last:0") is None
    assert doubt("split:0") is None
    assert doubt("split:4") is None
    assert doubt("cell:0") is None
    assert doubt("halves:1") == "transpose 'time_major' moves the input's axis 0 to axis 1"
    assert doubt("columns:0") == "transpose 'time_major' moves the input's axis 0 to axis 1"
    assert doubt("rows:0") == "transpose 'time_major' moves the input's axis 0 to axis 1"
    assert doubt("x_steps:2") is None


def test_a_library_of_mutually_recursive_functions_is_scanned_once_each():
    """f calls g and g calls f (a GraphDef built by hand: TensorFlow itself does not make one): the
    scan ends, naming each function's random op once; its seen-key held the message suffix, which
    grows with every call, so such a library was walked without end."""
    from tensorflow.core.framework import function_pb2, graph_pb2

    def fn(name, callee):
        f = function_pb2.FunctionDef()
        f.signature.name = name
        f.signature.input_arg.add(name="a", type=tf.float32.as_datatype_enum)
        f.signature.output_arg.add(name="out", type=tf.float32.as_datatype_enum)
        noise = f.node_def.add(name="noise", op="RandomUniform")
        noise.input.append("a")
        call = f.node_def.add(name="call", op="PartitionedCall", input=["noise:output:0"])
        call.attr["f"].func.name = callee
        f.ret["out"] = "call:output:0"
        return f

    gd = graph_pb2.GraphDef()
    gd.library.function.extend([fn("f", "g"), fn("g", "f")])
    gd.node.add(name="x", op="Placeholder")
    gd.node.add(name="top", op="PartitionedCall", input=["x"]).attr["f"].func.name = "f"
    model = types.SimpleNamespace(graph=types.SimpleNamespace(as_graph_def=lambda: gd))
    assert random_ops_upstream(model, "top:0") == [
        "noise in function 'f' called by op 'top'", "noise in function 'g' in function 'f' called by op 'top'"]


def test_the_product_of_the_shape_tensordot_takes_does_not_mix_a_batch():
    """TF 1.x's ``tensordot`` on a ``[batch, steps, units]`` tensor of unknown batch multiplies the
    input's free dimensions (``Prod`` over axis 0 of ``GatherV2`` of its ``Shape``): a reduction of a
    shape, not of the examples, and not named (it was, in the graph and in a function); a mean over
    the batch still is."""
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 6, 4], name="seq")
        w = tf.ones([4, 3])

        @tf.function
        def dense(v):
            return tf1.tensordot(v, w, [[2], [0]])

        h = dense(tf1.tensordot(x, tf.ones([4, 4]), [[2], [0]], name="td"))
        tf.identity(h, name="out")
        tf.identity(h - tf.reduce_mean(h, 0, name="batch_mean"), name="centred")
        # TensorFlow 1.5's layout (the real char-rnn's): a Gather from the Shape at indices that a
        # ListDiff computes from the input's Rank
        free = tf1.setdiff1d(tf.range(tf.rank(x)), [2])[0]
        rows = tf.reduce_prod(tf.raw_ops.Gather(params=tf.shape(x), indices=free, name="old/Gather"), 0,
                              name="old/Prod")
        tf.identity(tf.reshape(x, tf.stack([rows, 4])), name="old")
    old = g.get_operation_by_name("old/Gather")
    assert (old.inputs[0].op.type, old.inputs[1].op.type) == ("Shape", "ListDiff")
    prods = [op for op in g.get_operations() if op.type == "Prod" and op.name.startswith("td/")]
    assert [(op.name, op.inputs[0].op.type, op.inputs[0].op.inputs[0].op.type) for op in prods] == [
        ("td/Prod", "GatherV2", "Shape"), ("td/Prod_1", "GatherV2", "Shape")]
    body = g.as_graph_def().library.function[0]
    assert sorted(n.name for n in body.node_def if n.op == "Prod") == ["Tensordot/Prod", "Tensordot/Prod_1"]
    model = types.SimpleNamespace(graph=g)
    assert batch_mixing_ops(model, "out:0", "seq") == []
    assert batch_mixing_ops(model, "centred:0", "seq") == ["batch_mean"]
    assert batch_mixing_ops(model, "old:0", "seq") == []


def test_where_to_cut_instead_names_no_op_when_the_scan_finds_none():
    """A batch mixed by an op the scan does not know (a cumulative sum over the batch): the way out said 'below
    them' of ops it had not named; one op is 'it', more are 'them'."""
    from graphsurgeon._src.determinism import mixing

    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        tf.cumsum(x, axis=0, name="running")
        tf.subtract(x, tf.reduce_mean(x, axis=0), name="centred")
        tf.add(x - tf.reduce_max(x, axis=0), tf.reduce_min(x, axis=0), name="spread")
    model = types.SimpleNamespace(graph=g)
    x = g.get_tensor_by_name("x:0")
    assert mixing(model, "running:0", x).instead == "where an example's value does not change with its batch-mates"
    assert mixing(model, "centred:0", x).instead == "below it"
    assert mixing(model, "spread:0", x).instead == "below them"
