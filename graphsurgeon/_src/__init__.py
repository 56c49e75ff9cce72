"""graphsurgeon's implementation. Its modules are internal: the public API is ``graphsurgeon.__all__``."""
