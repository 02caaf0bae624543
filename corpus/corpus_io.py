"""Writes one corpus case: `<case>.onnx` and `<case>.json`, the inputs and onnxruntime's outputs.

Shared by sklearn/generate.py and ops/generate.py. The JSON format (read by
crates/model/tests/corpus.rs):

    {"inputs":  {NAME: {"datatype": "FP32", "shape": [N, F], "data": [...]}, ...},
     "outputs": {NAME: {"datatype": ..., "shape": [...], "data": [...], "classes": [...]?}, ...}}

`data` is the tensor flattened in row-major order. Floats are JSON numbers, except NaN and
the infinities, which are the strings "NaN", "Infinity" and "-Infinity". FP32 values are
written with the fewest digits that give back the same float32 (numpy's shortest repr),
FP64 values with Python's repr. A ZipMap output (onnxruntime answers a list of dicts, one
per row) is stored as the FP32 matrix [N, C], its columns in the ZipMap's label order, and
those labels as "classes": what serve answers for it.
"""

import json
import math
import os
import sys

import numpy as np
import onnxruntime as ort

DATATYPES = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
    np.dtype(np.bool_): "BOOL",
}


def _float(v, single):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    # str(np.float32) is the shortest decimal that reads back as the same float32; float()
    # of it, written by json with repr, keeps those digits.
    return float(str(np.float32(v))) if single else float(v)


def _tensor(array, classes=None):
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind in "US":
        datatype = "BYTES"
        data = [str(v) for v in array.ravel()]
    else:
        datatype = DATATYPES[array.dtype]
        if array.dtype.kind == "f":
            single = array.dtype == np.float32
            data = [_float(float(v), single) for v in array.ravel()]
        elif array.dtype.kind == "b":
            data = [bool(v) for v in array.ravel()]
        else:
            data = [int(v) for v in array.ravel()]
    out = {"datatype": datatype, "shape": list(array.shape), "data": data}
    if classes is not None:
        out["classes"] = classes
    return out


def _zipmap_labels(model, output):
    """The label order of the ZipMap node that makes `output`."""
    for node in model.graph.node:
        if node.op_type == "ZipMap" and output in node.output:
            for attr in node.attribute:
                if attr.name == "classlabels_int64s":
                    return [int(v) for v in attr.ints]
                if attr.name == "classlabels_strings":
                    return [v.decode() for v in attr.strings]
    raise ValueError(f"output {output} is a sequence of maps but no ZipMap makes it")


def session(model):
    """An onnxruntime session on one thread (the reference answers, and the benchmark)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def label(model, feeds):
    """onnxruntime's outputs for `feeds`, as the JSON objects of the format above."""
    sess = session(model)
    names = [o.name for o in sess.get_outputs()]
    results = sess.run(names, feeds)
    outputs = {}
    for meta, value in zip(sess.get_outputs(), results, strict=True):
        if meta.type.startswith("seq(map("):
            labels = _zipmap_labels(model, meta.name)
            matrix = np.array([[row[k] for k in labels] for row in value], dtype=np.float32)
            matrix = matrix.reshape(len(value), len(labels))
            outputs[meta.name] = _tensor(matrix, labels)
        else:
            outputs[meta.name] = _tensor(value)
    return outputs


def _dump(case):
    """The JSON text: one line per tensor field, so that a diff or a reader can find things."""
    parts = []
    for side in ("inputs", "outputs"):
        tensors = []
        for name, t in case[side].items():
            fields = ",\n    ".join(
                f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in t.items()
            )
            tensors.append(f"  {json.dumps(name)}: {{\n    {fields}\n  }}")
        parts.append(f'"{side}": {{\n' + ",\n".join(tensors) + "\n}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


# The cases written by this run, by directory: what `remove_stale` keeps.
WRITTEN = {}


class Cases:
    """A generator's cases by function name. `@CASES.case` registers one; `CASES.main(dir)`
    runs those whose names start with one of the command line's prefixes (all of them when
    none is given) and, after a full run, removes the files of cases since removed."""

    def __init__(self):
        self.by_name = {}

    def case(self, fn):
        """Registers a case under its function's name."""
        self.by_name[fn.__name__] = fn
        return fn

    def main(self, directory):
        prefixes = sys.argv[1:]
        for name, fn in self.by_name.items():
            if not prefixes or any(name.startswith(p) for p in prefixes):
                fn()
        if not prefixes:
            remove_stale(directory)


def remove_stale(directory):
    """Removes the cases of `directory` this run did not write (a case since removed from
    the generator); called after a full run."""
    keep = WRITTEN.get(directory, set())
    for file in sorted(os.listdir(directory)):
        stem, ext = os.path.splitext(file)
        if ext in (".onnx", ".json") and stem not in keep:
            os.remove(os.path.join(directory, file))
            print(f"removed {file}: no case writes it any more")


def write_case(directory, name, model, feeds):
    """Labels `feeds` with onnxruntime and writes `<name>.onnx` and `<name>.json`."""
    # skl2onnx lists the opsets in a set's order, which changes from run to run: sorted,
    # the same model gives the same bytes.
    opsets = sorted(model.opset_import, key=lambda o: o.domain)
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    outputs = label(model, feeds)
    graph_inputs = [i.name for i in model.graph.input]
    inputs = {k: _tensor(feeds[k]) for k in graph_inputs if k in feeds}
    with open(os.path.join(directory, f"{name}.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    with open(os.path.join(directory, f"{name}.json"), "w") as f:
        f.write(_dump({"inputs": inputs, "outputs": outputs}))
    WRITTEN.setdefault(directory, set()).add(name)
    sizes = ", ".join(f"{k} {v['shape']}" for k, v in outputs.items())
    print(f"{name}: {sizes}")
    return outputs
