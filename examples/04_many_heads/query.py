"""Answer one TF Serving REST ``:predict`` request body with a SavedModel, as a prediction service would.

    python query.py DIR '{"instances": [{"inputs": "great movie", "task_id": 3}]}'
    python query.py DIR '{"signature_name": "by_name", "inputs": {"inputs": ["great movie"], "task": ["task_003"]}}'

Both request formats of TF Serving's REST API are taken: ``"instances"`` (one object per example;
the reply is ``{"predictions": [...]}``, one object per example) and ``"inputs"`` (columns; the
reply is ``{"outputs": {...}}``), with an optional ``"signature_name"``. The inputs are converted
to the signature's dtypes and fed to ``tf.saved_model.load(DIR).signatures[name]``; nothing is
preprocessed on the client side. A failed request prints ``{"error": "..."}``, as TF Serving
answers it (with HTTP status 400); like ``curl``, this script still exits 0. Its stderr holds
nothing of TensorFlow's start-up lines (see ``_import_tensorflow``).
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile

import numpy as np

# absl's banner and glog-style INFO lines ("I0000 00:00:1795956889.817468   19749 port.cc:153] oneDNN ...")
_STARTUP = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                      r"|I\d{4} [\d:.]+\s+\d+ [^\]]+\] .*")


def _import_tensorflow():
    """``import tensorflow``, its start-up lines kept off stderr. TensorFlow 2.21 writes them (absl's
    banner, the oneDNN and cudart_stub notices) to descriptor 2 while its libraries load, before
    ``TF_CPP_MIN_LOG_LEVEL`` is read, so the variable (set here for what is logged later) does not
    stop them: descriptor 2 points at a temporary file during the import, and every other line the
    import wrote there is passed on to stderr."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    real = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(real, 2)
            os.close(real)
            log.seek(0)
            lines = log.read().decode("utf-8", "replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _STARTUP.fullmatch(line.rstrip("\n"))))
    return tensorflow


tf = _import_tensorflow()


def _columns(request: dict, keys: list) -> tuple[dict, bool]:
    """``({input: list of values}, row format?)``."""
    if ("instances" in request) == ("inputs" in request):
        raise ValueError('the request must have either "instances" or "inputs", not both')
    if "instances" in request:
        rows = request["instances"]
        if rows and not isinstance(rows[0], dict):
            rows = [{keys[0]: r} for r in rows] if len(keys) == 1 else rows
        return {k: [r[k] for r in rows] for k in (rows[0] if rows else keys)}, True
    cols = request["inputs"]
    return (cols if isinstance(cols, dict) else {keys[0]: cols}), False


def _plain(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v]
    return v.item() if isinstance(v, np.generic) else v


def answer(model_dir: str, request: dict) -> dict:
    """The response body TF Serving would send for ``request``."""
    fn = tf.saved_model.load(model_dir).signatures[request.get("signature_name", "serving_default")]
    specs = fn.structured_input_signature[1]
    try:
        cols, rows = _columns(request, sorted(specs))
        unknown = sorted(set(cols) - set(specs))
        if unknown:
            raise ValueError(f"unknown input(s) {unknown}; the signature takes {sorted(specs)}")
        out = fn(**{k: tf.constant(v, specs[k].dtype) for k, v in cols.items()})
    except (tf.errors.OpError, ValueError, TypeError, KeyError) as e:
        text = getattr(e, "message", None) or str(e)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return {"error": next((line for line in lines if "graphsurgeon:" in line), lines[0] if lines else repr(e))}
    out = {k: v.numpy() for k, v in out.items()}
    if not rows:
        return {"outputs": {k: _plain(v) for k, v in sorted(out.items())}}
    n = len(next(iter(out.values())))
    return {"predictions": [{k: _plain(v[i]) for k, v in sorted(out.items())} for i in range(n)]}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    body = argv[1]
    if body.startswith("@"):
        with open(body[1:], encoding="utf-8") as f:
            body = f.read()
    print(json.dumps(answer(argv[0], json.loads(body)), separators=(", ", ": ")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
