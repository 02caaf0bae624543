"""PyTorch models exported by torch.onnx's TorchScript exporter, labelled by PyTorch itself.

Run by hand (see ../README.md), from any directory, with the packages of requirements.txt:

    python corpus/torch/generate.py          # every case
    python corpus/torch/generate.py cnn      # only the cases whose name starts so
    python corpus/torch/generate.py --full OUTDIR   # the bench's full-size models (below)

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

The shapes of the heavy models users serve (CNNs, RNNs, transformers), narrow enough to
commit (random weights, seeded; nothing of anyone's trained model), the full-size ones
being the bench's:
- `resnet`: a ResNet-shaped CNN on 3x32x32 images: a 3x3 stem with BatchNorm, two basic
  residual blocks (the second with stride 2 and a 1x1 projection), global average pooling,
  Linear: `logits` [N, 10].
- `gru`: a 2-layer GRU over 50 steps of 32 features (batch first), its last step through
  Linear: `logits` [N, 4].
- `bert`: a BERT-style encoder from transformers (`BertForSequenceClassification` of a
  `BertConfig`: 2 layers, 2 heads, 32 wide, a vocabulary of 100), `input_ids` and
  `attention_mask` INT64 [N, S] with both the batch and the sequence dynamic
  (`dynamic_axes` {0: "batch", 1: "sequence"}), some rows padded: `logits` [N, 3].

`--full OUTDIR` writes the full-size variants that bench/engines.py times, with the same
modules and the same export, into OUTDIR (never committed: up to 45 MB each), without
expected answers (onnxruntime's answer is compared with torch's and the difference printed):
- `resnet18.onnx`: ResNet-18's layout on 3x224x224 images: a 7x7 stride-2 stem and max
  pooling, four stages of two basic blocks (64, 128, 256, 512 channels), global average
  pooling, Linear: `image` [N, 3, 224, 224] -> `logits` [N, 1000]. Not trained: a few
  forward passes in train mode set BatchNorm's running statistics.
- `gru.onnx`: the `gru` case 128 wide (2 layers, 50 steps of 32 features): `sequence`
  [N, 50, 32] -> `logits` [N, 4].
- `bert.onnx`: the `bert` case with 4 layers, 4 heads, 256 wide (1024 in the feed-forward),
  a vocabulary of 1000 and 128 positions: `input_ids`, `attention_mask` [N, S] -> `logits`.
"""

import os
import sys
import tempfile

import numpy as np
import onnx
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


def export(model, examples, input_names, output_names, axes=None):
    """torch.onnx.export with the TorchScript exporter and a dynamic batch (or the `axes`
    given); the file's bytes."""
    axes = axes or {name: {0: "batch"} for name in input_names + output_names}
    with tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "model.onnx")
        torch.onnx.export(
            model,
            tuple(torch.from_numpy(e) for e in examples),
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
    label_and_write_feeds(name, model, {input_name: rows}, output_names)


def label_and_write_feeds(name, model, feeds, output_names, axes=None):
    """As label_and_write, for a model of several inputs (`feeds`, in forward's order)."""
    names = list(feeds)
    onnx_bytes = export(model, [feeds[k][:1] for k in names], names, output_names, axes)

    def answer(f):
        with torch.no_grad():
            out = model(*(torch.from_numpy(f[k]) for k in names))
        out = out if isinstance(out, tuple) else (out,)
        return {k: v.numpy() for k, v in zip(output_names, out, strict=True)}

    rows = len(feeds[names[0]])
    outputs = answer(feeds)
    per_row = [answer(batch_of(feeds, r)) for r in range(rows)]
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


class Block(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with BatchNorm, and the shortcut (a 1x1
    projection when the shape changes)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


@case
def resnet():
    rng = seed()
    x = rng.normal(size=(256, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 256).astype(np.int64)
    # A little training, so that BatchNorm's running statistics are not the defaults.
    model = train(ResNet(), x, y, epochs=1)
    rows = np.concatenate([x[:6], np.zeros((1, 3, 32, 32)), np.full((1, 3, 32, 32), 3.0)])
    label_and_write("resnet", model, "image", rows.astype(np.float32), ["logits"])


class Gru(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.gru = nn.GRU(32, hidden, num_layers=2, batch_first=True)
        self.fc = nn.Linear(hidden, 4)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(out[:, -1, :])


@case
def gru():
    rng = seed()
    x = rng.normal(size=(128, 50, 32)).astype(np.float32)
    y = rng.integers(0, 4, 128).astype(np.int64)
    model = train(Gru(), x, y, epochs=1)
    rows = np.concatenate([x[:7], np.zeros((1, 50, 32))]).astype(np.float32)
    label_and_write("gru", model, "sequence", rows, ["logits"])


class Bert(nn.Module):
    """BertForSequenceClassification's logits, as an exporter of a transformers model gives
    them (the module returns a ModelOutput)."""

    def __init__(self, vocab=100, width=32, ffn=64, layers=2, heads=2, positions=64):
        super().__init__()
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(
            vocab_size=vocab,
            hidden_size=width,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=ffn,
            max_position_embeddings=positions,
            num_labels=3,
        )
        self.bert = BertForSequenceClassification(config)

    def forward(self, input_ids, attention_mask):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).logits


@case
def bert():
    rng = seed()
    model = Bert().eval()
    ids = rng.integers(1, 100, size=(8, 16)).astype(np.int64)
    mask = np.ones((8, 16), dtype=np.int64)
    for row, length in enumerate([16, 16, 12, 9, 16, 5, 14, 1]):
        ids[row, length:] = 0
        mask[row, length:] = 0
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "logits": {0: "batch"},
    }
    label_and_write_feeds(
        "bert", model, {"input_ids": ids, "attention_mask": mask}, ["logits"], axes
    )


class ResNet18(nn.Module):
    """ResNet-18's layout (torchvision's, written with the Block above)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [Block(cin, cout, stride), Block(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def full_models(rng):
    """The full-size variants: (file stem, module, example feeds, output names, axes)."""
    resnet = ResNet18()
    with torch.no_grad():  # BatchNorm's running statistics, from a few batches
        resnet.train()
        for _ in range(3):
            resnet(torch.from_numpy(rng.normal(size=(8, 3, 224, 224)).astype(np.float32)))
    resnet.eval()
    image = rng.normal(size=(1, 3, 224, 224)).astype(np.float32)
    sequence = rng.normal(size=(4, 50, 32)).astype(np.float32)
    ids = rng.integers(1, 1000, size=(2, 64)).astype(np.int64)
    mask = np.ones((2, 64), dtype=np.int64)
    bert_axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "logits": {0: "batch"},
    }
    bert = Bert(vocab=1000, width=256, ffn=1024, layers=4, heads=4, positions=128).eval()
    return [
        ("resnet18", resnet, {"image": image}, ["logits"], None),
        ("gru", Gru(hidden=128).eval(), {"sequence": sequence}, ["logits"], None),
        ("bert", bert, {"input_ids": ids, "attention_mask": mask}, ["logits"], bert_axes),
    ]


def write_full(directory):
    """Exports the full-size variants into `directory` (the bench's models), each checked
    against onnxruntime on its example rows; no expected answers."""
    os.makedirs(directory, exist_ok=True)
    for name, model, feeds, output_names, axes in full_models(seed()):
        names = list(feeds)
        # Traced on the first row, as the cases are (a GRU traced on several rows warns that
        # other batch sizes may fail); checked on all of them.
        onnx_bytes = export(model, [feeds[k][:1] for k in names], names, output_names, axes)
        path = os.path.join(directory, f"{name}.onnx")
        with open(path, "wb") as f:
            f.write(onnx_bytes)
        with torch.no_grad():
            want = model(*(torch.from_numpy(feeds[k]) for k in names)).numpy()
        got = corpus_io.session(onnx.load_from_string(onnx_bytes)).run(None, feeds)[0]
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
        print(
            f"{path}: {len(onnx_bytes) / 2**20:.1f} MB, {shapes}; onnxruntime against torch: "
            f"largest difference {float(np.max(np.abs(got - want))):.2e}"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--full"]:
        if len(sys.argv) != 3:
            sys.exit("usage: generate.py --full OUTDIR")
        write_full(sys.argv[2])
    else:
        CASES.main(HERE)
