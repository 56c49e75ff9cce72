"""SignatureDefs of the SavedModels graphsurgeon writes, built as protos (TensorFlow's
``predict_signature_def`` builds the same one through a deprecated helper that logs a warning)."""
from __future__ import annotations

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

PREDICT_METHOD = "tensorflow/serving/predict"


def predict_signature(inputs: dict, outputs: dict) -> meta_graph_pb2.SignatureDef:
    """A Predict SignatureDef: ``{key: tf.Tensor}`` inputs and outputs, each named with its
    tensor's name, dtype and (possibly partly unknown) shape."""
    sig = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for field, tensors in ((sig.inputs, inputs), (sig.outputs, outputs)):
        for key, t in tensors.items():
            field[key].name = t.name
            field[key].dtype = t.dtype.as_datatype_enum
            field[key].tensor_shape.CopyFrom(tf.TensorShape(t.shape).as_proto())
    return sig
