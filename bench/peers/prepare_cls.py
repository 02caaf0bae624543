"""Make the PP-OCR direction classifier servable with a symbolic batch:
python prepare_cls.py IN.onnx OUT.onnx OUT_BATCH1.onnx

The rapidocr wheel's ch_ppocr_mobile_v2.0_cls_mobile.onnx declares its input [N, 3, ?, ?]
(rapidocr always feeds 48 x 192 crops) and flattens its pooled features with a Reshape whose
target shape is computed at run time: Concat(Cast(Slice(Cast(Shape(x), int32))), [200]). tract
cannot type that with a symbolic batch ("Reshape ToTypedTranslator: shape input is variable"),
so `serve cls.onnx` answers 503 to every request. This writes a copy where
- the input's height and width are fixed (default 48 x 192), the batch N left free;
- every Reshape whose target shape is computed becomes a constant [-1, ...] of the same shape
  (found by running the model once in onnxruntime at batch 1).
The weights and every other node are untouched; outputs match the original (checked here).

OUT_BATCH1.onnx is the original with its input pinned to [1, 3, 48, 192]: no symbol at all, so
tract plans it for that one shape (batching impossible), the fastest tract can run it.
"""

import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper


def main() -> int:
    src, dst, dst1 = sys.argv[1], sys.argv[2], sys.argv[3]
    h, w = 48, 192
    m = onnx.load(src)
    d = m.graph.input[0].type.tensor_type.shape.dim
    for i, v in enumerate((1, 3, h, w)):
        d[i].Clear()
        d[i].dim_value = v
    onnx.save(m, dst1)
    print(f"wrote {dst1}: input {m.graph.input[0].name} [1, 3, {h}, {w}]")
    m = onnx.load(src)
    g = m.graph
    dims = g.input[0].type.tensor_type.shape.dim
    for i, v in ((2, h), (3, w)):
        dims[i].Clear()
        dims[i].dim_value = v
    const = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant"
                                               for o in n.output}
    computed = [n for n in g.node if n.op_type == "Reshape" and n.input[1] not in const]

    # The actual shapes at batch 1, from onnxruntime.
    probe = onnx.ModelProto()
    probe.CopyFrom(m)
    for n in computed:
        probe.graph.output.append(helper.make_empty_tensor_value_info(n.output[0]))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {g.input[0].name: x})))
    for n in computed:
        shape = [-1] + list(outs[n.output[0]].shape[1:])
        name = n.name + "_static_shape"
        g.initializer.append(numpy_helper.from_array(np.array(shape, dtype=np.int64), name))
        n.input[1] = name
        print(f"  {n.name}: target shape {shape} (was computed from Shape)")
    onnx.checker.check_model(m)
    onnx.save(m, dst)

    # Same answers as the original, at batch 1 and 8.
    a = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(dst, providers=["CPUExecutionProvider"])
    x8 = np.random.default_rng(1).uniform(-1, 1, (8, 3, h, w)).astype(np.float32)
    for xx in (x, x8):
        diff = np.max(np.abs(a.run(None, {g.input[0].name: xx})[0] - b.run(None, {g.input[0].name: xx})[0]))
        assert diff < 1e-5, diff
    print(f"wrote {dst}: input {g.input[0].name} [N, 3, {h}, {w}], "
          f"{len(computed)} Reshape(s) made static; outputs equal the original's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
