#!/usr/bin/env python3
"""Train the iris test model and export it as joblib + ONNX.

Usage: scripts/iris_model.py OUTDIR [--no-zipmap] [--opset N] [--check]

Writes OUTDIR/model.joblib (for MLServer's SKLearnModel and the KServe test
server) and OUTDIR/model.onnx (for modelgate's built-in ONNX runtime).

The model is a deterministic sklearn LogisticRegression (lbfgs, fixed
random_state) trained on sklearn.datasets.load_iris() (shipped with
scikit-learn, no download). The ONNX graph:
  input          float32 [N, 4]
  label          int64   [N]
  probabilities  seq(map(int64, float))   (default: skl2onnx's ZipMap)
                 float32 [N, 3]           (with --no-zipmap)
Opsets: ai.onnx 15 (tract-onnx supports 13..17) and ai.onnx.ml 1.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

import joblib
import numpy as np
import onnx
import onnx.helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

SAMPLE_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
EXPECTED_LABELS = [1, 1]
DEFAULT_OPSET = 15
ML_OPSET = 1


def train() -> LogisticRegression:
    data = load_iris()
    model = LogisticRegression(max_iter=1000, random_state=0)
    model.fit(data.data, data.target)
    return model


def _rename_everywhere(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for vi in list(graph.output) + list(graph.value_info) + list(graph.input):
        if vi.name == old:
            vi.name = new
    for init in graph.initializer:
        if init.name == old:
            init.name = new


def _rename_outputs(model: onnx.ModelProto, renames: dict[str, str]) -> None:
    """Rename graph outputs; skl2onnx already uses e.g. 'label' for an
    intermediate tensor, so move any clashing intermediate name aside first."""
    graph = model.graph
    for new in renames.values():
        if new not in renames:
            _rename_everywhere(graph, new, f"{new}_raw")
    for old, new in renames.items():
        _rename_everywhere(graph, old, new)


def to_onnx(model: LogisticRegression, zipmap: bool = True, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    options = {id(model): {"zipmap": zipmap}}
    onx = convert_sklearn(
        model,
        name="iris_logreg",
        initial_types=[("input", FloatTensorType([None, 4]))],
        target_opset={"": opset, "ai.onnx.ml": ML_OPSET},
        options=options,
    )
    outs = [o.name for o in onx.graph.output]
    if len(outs) != 2:
        raise SystemExit(f"unexpected ONNX outputs {outs}")
    _rename_outputs(onx, {outs[0]: "label", outs[1]: "probabilities"})
    # target_opset is only an upper bound: skl2onnx declares the lowest opset
    # its nodes need (9 here: Cast). Declare the requested one (Cast-13 has the
    # same semantics for float/int64), so consumers see ai.onnx >= 13.
    del onx.opset_import[:]
    onx.opset_import.extend([
        onnx.helper.make_opsetid("", opset),
        onnx.helper.make_opsetid("ai.onnx.ml", ML_OPSET),
    ])
    onx.doc_string = "iris LogisticRegression, made by modelgate scripts/iris_model.py"
    onnx.checker.check_model(onx)
    return onx


def check(joblib_path: str, onnx_path: str) -> None:
    import onnxruntime as ort

    model = joblib.load(joblib_path)
    rows = np.array(SAMPLE_ROWS, dtype=np.float32)
    sk = model.predict(rows).tolist()
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    label, probs = sess.run(None, {"input": rows})
    print(f"sklearn predict: {sk}")
    print(f"onnxruntime label: {label.tolist()}")
    print(f"onnxruntime probabilities: {probs if isinstance(probs, list) else probs.tolist()}")
    if sk != EXPECTED_LABELS or label.tolist() != EXPECTED_LABELS:
        raise SystemExit(f"expected {EXPECTED_LABELS}, got sklearn={sk} onnx={label.tolist()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--no-zipmap", action="store_true",
                    help="probabilities as float32 [N,3] tensor instead of seq(map(int64,float))")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ai.onnx opset (default %(default)s)")
    ap.add_argument("--check", action="store_true", help="verify predictions with onnxruntime")
    args = ap.parse_args(argv)

    os.makedirs(args.outdir, exist_ok=True)
    model = train()
    joblib_path = os.path.join(args.outdir, "model.joblib")
    onnx_path = os.path.join(args.outdir, "model.onnx")
    joblib.dump(model, joblib_path)
    onx = to_onnx(model, zipmap=not args.no_zipmap, opset=args.opset)
    data = onx.SerializeToString()
    with open(onnx_path, "wb") as f:
        f.write(data)
    print(f"wrote {joblib_path}")
    print(f"wrote {onnx_path} sha256={hashlib.sha256(data).hexdigest()}")
    if args.check:
        check(joblib_path, onnx_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
