"""PyTorch models exported by torch.onnx's TorchScript exporter, labelled by PyTorch itself.

Run by hand (see ../README.md), from any directory, with the packages of requirements.txt:

    python corpus/torch/generate.py          # every case
    python corpus/torch/generate.py cnn      # only the cases whose name starts so

Each case is a small module trained for a few epochs on synthetic data made here (nothing
is downloaded), put in eval mode and exported as users export today:

    torch.onnx.export(model, (example,), "model.onnx", dynamo=False,
                      input_names=[...], output_names=[...],
                      dynamic_axes={name: {0: "batch"} for every input and output})

The expected outputs are the module's own answers for 8 rows at once, which must agree with
its answers for each row alone and with onnxruntime on the exported file (framework_io.py).

What the exporter does, as this script checks it: the ONNX inputs and outputs are named as
`input_names` and `output_names` say, and every dimension listed in `dynamic_axes` is the
`dim_param` given there ("batch"), the same on every input and output; the other dimensions
are fixed. Dropout disappears in eval mode and BatchNorm is folded into the convolution
before it.

The cases:
- `mlp`: 8 FP32 features, Linear-ReLU-Dropout-Linear, two outputs: the `logits` [N, 3]
  and their softmax, `probabilities` [N, 3].
- `cnn`: a 1x12x12 image, Conv-BatchNorm-ReLU-MaxPool, Conv-ReLU, global average pooling,
  `torch.flatten(x, 1)`, Linear: `logits` [N, 2].
- `cnn_view`: the same layers flattened the way many tutorials write it,
  `x.view(x.size(0), -1)` after the second convolution, then Linear: the exporter computes
  the target shape from Shape/Gather at run time.
"""

import os
import sys
import tempfile

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import corpus_io  # noqa: E402
from framework_io import batch_of, write_case  # noqa: E402

SEED = 0
CASES = corpus_io.Cases()
case = CASES.case

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def seed():
    torch.manual_seed(SEED)
    return np.random.default_rng(SEED)


def train(model, x, y, epochs, lr=0.01, batch=32):
    """A few epochs of Adam on cross-entropy; then eval mode (Dropout off, BatchNorm frozen)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        for i in range(0, len(x), batch):
            opt.zero_grad()
            out = model(x[i : i + batch])
            logits = out[0] if isinstance(out, tuple) else out
            loss_fn(logits, y[i : i + batch]).backward()
            opt.step()
    model.eval()
    return model


def export(model, example, input_names, output_names):
    """torch.onnx.export with the TorchScript exporter and a dynamic batch; the file's bytes."""
    axes = {name: {0: "batch"} for name in input_names + output_names}
    with tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "model.onnx")
        torch.onnx.export(
            model,
            (torch.from_numpy(example),),
            path,
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=axes,
        )
        with open(path, "rb") as f:
            return f.read()


def label_and_write(name, model, input_name, rows, output_names):
    """Exports `model`, asks it for all the rows and for each row, and writes the case."""
    onnx_bytes = export(model, rows[:1], [input_name], output_names)

    def answer(x):
        with torch.no_grad():
            out = model(torch.from_numpy(x))
        out = out if isinstance(out, tuple) else (out,)
        return {k: v.numpy() for k, v in zip(output_names, out, strict=True)}

    feeds = {input_name: rows}
    outputs = answer(rows)
    per_row = [answer(batch_of(feeds, r)[input_name]) for r in range(len(rows))]
    write_case(HERE, name, onnx_bytes, feeds, outputs, per_row)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(8, 16)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        logits = self.out(self.drop(torch.relu(self.hidden(x))))
        return logits, torch.softmax(logits, dim=1)


class Cnn(nn.Module):
    def __init__(self, view):
        super().__init__()
        self.view = view
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        # view: 8 channels of 4x4 after the second convolution, flattened.
        self.fc = nn.Linear(8 * 4 * 4 if view else 8, 2)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.relu(self.conv2(x))
        if self.view:
            x = x.view(x.size(0), -1)
        else:
            x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


@case
def mlp():
    rng = seed()
    centers = rng.normal(scale=2.0, size=(3, 8))
    y = rng.integers(0, 3, 600)
    x = (centers[y] + rng.normal(size=(600, 8))).astype(np.float32)
    model = train(Mlp(), x, y.astype(np.int64), epochs=10)
    rows = np.concatenate(
        [x[:5], np.zeros((1, 8)), np.full((1, 8), -1e3), [[1e30, 0, 0, 0, 0, 0, 0, -1e-30]]]
    ).astype(np.float32)
    label_and_write("mlp", model, "features", rows, ["logits", "probabilities"])


def bars(rng, n):
    """12x12 images of a horizontal (class 0) or vertical (class 1) bar, in noise."""
    y = rng.integers(0, 2, n)
    x = rng.normal(scale=0.3, size=(n, 1, 12, 12))
    where = rng.integers(1, 11, n)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, where[i], :] += 1.0
        else:
            x[i, 0, :, where[i]] += 1.0
    return x.astype(np.float32), y.astype(np.int64)


def cnn_case(name, view):
    rng = seed()
    x, y = bars(rng, 400)
    model = train(Cnn(view), x, y, epochs=4)
    rows = np.concatenate([x[:6], np.zeros((1, 1, 12, 12)), np.full((1, 1, 12, 12), 5.0)])
    label_and_write(name, model, "image", rows.astype(np.float32), ["logits"])


@case
def cnn():
    cnn_case("cnn", view=False)


@case
def cnn_view():
    cnn_case("cnn_view", view=True)


if __name__ == "__main__":
    CASES.main(HERE)
