#!/usr/bin/python3
"""RoIAlign fixtures from torchvision's own kernel (Debian python3-torchvision 0.14, CPU).

Writes test/fixtures/roialign/roialign.json: for each case the input features (NCHW, float32), the
boxes (x1, y1, x2, y2 in image coordinates) with their batch index, the options (output size,
spatial_scale, sampling_ratio, aligned), torchvision.ops.roi_align's output, a random upstream gradient
and the gradient with respect to the features (autograd through roi_align's backward kernel).
Cases cover both `aligned` modes, fixed and adaptive (0) sampling, boxes partly or wholly outside the
map, boxes smaller than one cell, degenerate boxes, and several images in a batch.
usage: /usr/bin/python3 tools/make-roialign-fixtures.py
"""
import json, os
import torch
import torchvision
from torchvision.ops import roi_align

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "roialign", "roialign.json")
g = torch.Generator().manual_seed(20261203)

def rnd(*shape):
    return torch.randn(*shape, generator=g, dtype=torch.float32)

def boxes_for(n_images, H, W, scale, k):
    """k random boxes per image in image coordinates (the map covers W/scale x H/scale), plus edge cases."""
    iw, ih = W / scale, H / scale
    rows = []
    for b in range(n_images):
        for _ in range(k):
            x1 = float(torch.rand(1, generator=g)) * iw * 1.1 - 0.05 * iw
            y1 = float(torch.rand(1, generator=g)) * ih * 1.1 - 0.05 * ih
            w = float(torch.rand(1, generator=g)) * iw * 0.8 + 0.2
            h = float(torch.rand(1, generator=g)) * ih * 0.8 + 0.2
            rows.append([b, x1, y1, x1 + w, y1 + h])
    rows += [
        [0, -3.0 / scale, -2.0 / scale, 2.5 / scale, 3.5 / scale],      # sticks out top-left
        [n_images - 1, (W - 2) / scale, (H - 3) / scale, (W + 4) / scale, (H + 2) / scale],  # sticks out bottom-right
        [0, 2.2 / scale, 3.1 / scale, 2.6 / scale, 3.3 / scale],       # smaller than one cell
        [0, 4.0 / scale, 4.0 / scale, 4.0 / scale, 4.0 / scale],       # a point
        [0, (W + 5) / scale, (H + 5) / scale, (W + 9) / scale, (H + 9) / scale],  # wholly outside
        [0, 0.0, 0.0, iw, ih],                                          # the whole map
    ]
    return torch.tensor(rows, dtype=torch.float32)

def f32(t):
    """float32 values as the shortest decimal that reads back to the same float32 (9 significant digits)."""
    return [float("%.9g" % v) for v in t.detach().flatten().tolist()]

cases = []
configs = [
    # name, N, C, H, W, output, scale, sampling, aligned
    ("aligned-adaptive-s0.25", 2, 3, 13, 17, (7, 7), 0.25, 0, True),     # detectron2 (ROIAlignV2, sampling 0)
    ("unaligned-s2-s0.25", 2, 3, 13, 17, (7, 7), 0.25, 2, False),        # torchvision MultiScaleRoIAlign
    ("unaligned-s2-mask14", 1, 4, 16, 12, (14, 14), 0.125, 2, False),    # torchvision mask branch
    ("aligned-s2-mask14", 1, 4, 16, 12, (14, 14), 0.125, 2, True),
    ("aligned-s1-rect", 1, 2, 9, 11, (3, 5), 1.0, 1, True),
    ("unaligned-adaptive-rect", 1, 2, 9, 11, (5, 3), 0.5, 0, False),
    ("aligned-s3-scale1", 2, 2, 10, 10, (4, 4), 1.0, 3, True),
    ("unaligned-adaptive-big", 1, 3, 24, 20, (2, 2), 0.0625, 0, False),
]
for name, N, C, H, W, out, scale, sampling, aligned in configs:
    x = rnd(N, C, H, W).requires_grad_(True)
    boxes = boxes_for(N, H, W, scale, 5)
    y = roi_align(x, boxes, output_size=out, spatial_scale=scale, sampling_ratio=sampling, aligned=aligned)
    dy = rnd(*y.shape)
    (y * dy).sum().backward()
    cases.append({
        "name": name, "input_shape": [N, C, H, W], "output_size": list(out), "spatial_scale": scale,
        "sampling_ratio": sampling, "aligned": aligned,
        "input": f32(x), "rois": [[int(r[0])] + [float("%.9g" % v) for v in r[1:]] for r in boxes.tolist()],
        "output": f32(y), "grad_output": f32(dy), "grad_input": f32(x.grad),
    })

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"generator": f"torch {torch.__version__}, torchvision {torchvision.__version__} (CPU), tools/make-roialign-fixtures.py",
               "layout": "input NCHW, output [K, C, ph, pw], rois [batch_index, x1, y1, x2, y2]", "cases": cases}, f)
print(f"{len(cases)} cases -> {OUT} ({os.path.getsize(OUT) / 1e3:.0f} kB)")
