"""Many heads, one model: merge task models that share a backbone (see :mod:`.merge`)."""
