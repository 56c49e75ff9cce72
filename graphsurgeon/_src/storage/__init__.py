"""The one layer of graphsurgeon that opens files and sessions.

Everything else works on graphs, names and arrays; whatever reads or writes a
checkpoint, a graph file, a SavedModel, a data set, or creates a
``tf.compat.v1.Session`` lives here.
"""
