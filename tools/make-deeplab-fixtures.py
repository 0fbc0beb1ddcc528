#!/usr/bin/python3
"""DeepLab-v3 parity fixtures, run by tools/make-deeplab-fixtures.ts (which writes the inputs).

usage: /usr/bin/python3 tools/make-deeplab-fixtures.py IN_DIR OUT_DIR

IN_DIR: weights.safetensors (the seeded fixture model, reference keys head.*), x_*.f32 (NCHW float32
inputs), step_x.f32 / step_labels.u8 / step_mask{1,2}.f32 and manifest.json.
The PyTorch model is torchvision's deeplabv3_resnet50 (num_classes 21, no aux head), whose layout
is the reference's segmentation/models/deeplabv3_model.py with `classifier.` for `head.`.

OUT_DIR/deeplab-fixtures.pt (torch.save of a flat dict of tensors):
  forward/<i>            eval-mode logits of input i (NCHW float32; [:, :, ::s, ::s] when the
                         manifest gives a stride s > 1)
  step<j>/loss           OHEM loss of SGD step j (j = 1, 2) as the reference computes it
  step<j>/<key>          sampled values of every trained tensor and BN running statistic after step j
  buf<j>/<key>           sampled momentum buffers after step j (step 1: the gradient + weight decay)
  f64/…                  the same two steps in float64 (the exact answer; stored as float32)
  idx/<key>              the flat indices sampled (int32; all of them for tensors up to 256 values)
Training step: model.train(); conv1, bn1, layer1, layer2 in eval mode with requires_grad False (the
reference's freeze_layers 2); the Dropout(0.5) after the ASPP projection replaced by the fixed masks
our forward draws; CrossEntropyOHEM(0.2) with ignore 255; torch.optim.SGD over model.parameters()
(lr 0.002, momentum 0.9, weight decay 1e-4).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deeplab_reference import freeze_front, ohem  # noqa: E402

SAMPLES = 256
DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=DTYPES[v["dtype"]]).reshape(v["shape"]).copy())
    return out


class FixedMask(nn.Module):
    def __init__(self):
        super().__init__()
        self.mask = None

    def forward(self, x):
        return x * self.mask


def train_steps(sd, dtype, x, labels, masks, st, out, tag):
    torch.manual_seed(0)
    model = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    model.load_state_dict(sd, strict=False)
    model = model.to(dtype)
    dropout = FixedMask()
    assert isinstance(model.classifier[0].project[3], nn.Dropout)
    model.classifier[0].project[3] = dropout
    model.train()
    freeze_front(model)
    opt = torch.optim.SGD(model.parameters(), lr=st["lr"], momentum=st["momentum"], weight_decay=st["weightDecay"])
    trained = {k for k, p in model.named_parameters() if p.requires_grad}
    frozen_prefixes = ("backbone.conv1", "backbone.bn1", "backbone.layer1.", "backbone.layer2.")
    recorded = [k for k in model.state_dict() if not k.endswith("num_batches_tracked") and (k in trained or (("running_" in k) and not k.startswith(frozen_prefixes)))]
    params = dict(model.named_parameters())
    for j, mask in enumerate(masks, 1):
        dropout.mask = mask
        opt.zero_grad()
        loss = ohem(model(x)["out"], labels, st["ohem"])
        loss.backward()
        opt.step()
        out[f"{tag}step{j}/loss"] = loss.detach().reshape(1).float()
        state = model.state_dict()
        for k in recorded:
            flat = state[k].detach().reshape(-1)
            ik = f"idx/{k}"
            if ik not in out:
                m = flat.numel()
                out[ik] = torch.from_numpy(np.unique(np.linspace(0, m - 1, min(m, SAMPLES)).round().astype(np.int32)))
            key = k.replace("classifier.", "head.", 1)
            idx = out[ik].long()
            out[f"{tag}step{j}/{key}"] = flat[idx].clone().float()
            if k in trained:
                buf = opt.state[params[k]]["momentum_buffer"].reshape(-1)
                out[f"{tag}buf{j}/{key}"] = buf[idx].clone().float()
    print(f"{dtype}: losses {out[tag + 'step1/loss'].item():.7f}, {out[tag + 'step2/loss'].item():.7f}; {len(recorded)} tensors sampled")


def main():
    src, dst = sys.argv[1], sys.argv[2]
    manifest = json.load(open(os.path.join(src, "manifest.json")))
    torch.set_num_threads(2)
    sd = {("classifier." + k[5:] if k.startswith("head.") else k): v for k, v in read_safetensors(os.path.join(src, "weights.safetensors")).items()}
    model = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    out = {}

    model.eval()
    with torch.no_grad():
        for i, f in enumerate(manifest["forward"]):
            x = torch.from_numpy(np.fromfile(os.path.join(src, f["file"]), dtype=np.float32).reshape(f["shape"]))
            s = f["stride"]
            out[f"forward/{i}"] = model(x)["out"][:, :, ::s, ::s].contiguous()

    st = manifest["step"]
    b, n = st["batch"], st["size"]
    x = torch.from_numpy(np.fromfile(os.path.join(src, "step_x.f32"), dtype=np.float32).reshape(b, 3, n, n))
    labels = torch.from_numpy(np.fromfile(os.path.join(src, "step_labels.u8"), dtype=np.uint8).reshape(b, n, n).astype(np.int64))
    masks = [torch.from_numpy(np.fromfile(os.path.join(src, f"step_mask{j}.f32"), dtype=np.float32).reshape(b, 256, n // 8, n // 8)) for j in (1, 2)]
    # float32 (what we compare with) and float64 (the exact answer both float32 runs approximate:
    # random weights, OHEM's cut and ReLU boundaries make these gradients ill-conditioned)
    for dtype, tag in ((torch.float32, ""), (torch.float64, "f64/")):
        train_steps(sd, dtype, x.to(dtype), labels, [m.to(dtype) for m in masks], st, out, tag)
    # the index lists under the reference keys too (the test looks tensors up by those)
    for k in list(out):
        if k.startswith("idx/classifier."):
            out["idx/head." + k[len("idx/classifier."):]] = out.pop(k)
    os.makedirs(dst, exist_ok=True)
    torch.save(out, os.path.join(dst, "deeplab-fixtures.pt"))
    print(f"wrote {os.path.join(dst, 'deeplab-fixtures.pt')}")


if __name__ == "__main__":
    main()
