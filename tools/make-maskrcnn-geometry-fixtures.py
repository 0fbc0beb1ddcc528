#!/usr/bin/python3
"""Mask R-CNN geometry fixtures from torchvision's own functions (Debian python3-torch 1.13 /
python3-torchvision 0.14, CPU).

Writes test/fixtures/maskrcnn-geometry/geometry.json with, each computed by torchvision itself:
  anchors      AnchorGenerator(((32,),(64,),(128,),(256,),(512,)), ((0.5,1,2),)*5) on padded image
               sizes with FPN feature sizes (incl. sizes that do not divide, stride = size // feat)
  decode       BoxCoder((1,1,1,1)) / BoxCoder((10,10,5,5)).decode_single on random deltas incl. huge
               dw/dh (clamp), 1 and 3 boxes per reference; encode_single on random pairs
  clip, small  clip_boxes_to_image, remove_small_boxes (min 1e-3, 1e-2 and exact-boundary sizes)
  iou          box_area, box_iou
  sort, topk   Tensor.sort(descending=True) and Tensor.topk on values with many ties (the CPU order)
  nms          torchvision.ops.nms on random boxes with many overlaps and equal scores
  batched_nms  torchvision.ops.batched_nms below (coordinate trick) and above (per-class loop) 4000
               coordinates
  levels       MultiScaleRoIAlign's LevelMapper (via _setup_scales) on boxes of many sizes
  transform    GeneralizedRCNNTransform (eval): resized sizes for several image sizes, the batched
               (normalised, resized, padded) tensor of a small real image, postprocess box rescale
  detectron2_transform  detectron2's preprocessing re-expressed with PIL/torch (detectron2 is not
               installable): ResizeShortestEdge's size rule, PIL BILINEAR on the uint8 image, BGR or RGB
               (x - mean) / std in float32, zero padding to 32; detector_postprocess box scaling + clip
  paste        paste_masks_in_image (roi_heads) for boxes incl. boxes partly outside the image; and
               detectron2's grid_sample paste, re-expressed here with torch.nn.functional.grid_sample
               (detectron2 itself is not installable): pixel centres (x + 0.5), normalised to the box
               as (x - x0) / (x1 - x0) * 2 - 1, sampled with align_corners=False, zeros outside, >= 0.5
Big float arrays are stored as base64 of little-endian float32 ("b64" keys).
usage: /usr/bin/python3 tools/make-maskrcnn-geometry-fixtures.py
"""
import base64, json, math, os
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import boxes as box_ops
from torchvision.ops import poolers
import torchvision.transforms.functional as TF

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "maskrcnn-geometry", "geometry.json")
g = torch.Generator().manual_seed(20261203)
torch.set_num_threads(1)


def b64(t):
    return base64.b64encode(t.detach().contiguous().numpy().astype("<f4").tobytes()).decode("ascii")


def fl(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def rand(*shape):
    return torch.rand(*shape, generator=g, dtype=torch.float32)


def dyadic(t, q):
    """Rounds to multiples of 1/q (exact in float32, short in JSON)."""
    return torch.round(t * q) / q


def random_boxes(n, W, H, min_side=1.0, max_side=None, q=None):
    max_side = max_side or max(W, H) / 2
    x1 = rand(n) * W * 1.1 - 0.05 * W
    y1 = rand(n) * H * 1.1 - 0.05 * H
    w = rand(n) * (max_side - min_side) + min_side
    h = rand(n) * (max_side - min_side) + min_side
    b = torch.stack([x1, y1, x1 + w, y1 + h], 1)
    return dyadic(b, q) if q else b


out = {}

# ---------------------------------------------------------------- anchors
gen = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
anchor_cases = []
for (ih, iw), feats in [
    ((64, 96), [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]),
    ((100, 75), [(25, 19), (13, 10), (7, 5), (4, 3), (2, 2)]),
]:
    il = ImageList(torch.zeros(1, 3, ih, iw), [(ih, iw)])
    fmaps = [torch.zeros(1, 1, fh, fw) for fh, fw in feats]
    anchors = gen(il, fmaps)[0]
    anchor_cases.append({"image": [ih, iw], "features": feats, "anchors": fl(anchors)})
out["anchors"] = {"cell": [fl(c) for c in gen.cell_anchors], "cases": anchor_cases}

# ---------------------------------------------------------------- decode / encode
decode_cases = []
for weights, k in [((1.0, 1.0, 1.0, 1.0), 1), ((10.0, 10.0, 5.0, 5.0), 3)]:
    coder = BoxCoder(weights)
    n = 100
    ref = random_boxes(n, 200, 150, 2, 120)
    deltas = torch.randn(n, 4 * k, generator=g) * (1.0 if k == 1 else 4.0)
    deltas[:10, 2::4] = 20.0 + rand(10, k) * 50  # huge dw: clamped at log(1000/16) (after /ww)
    deltas[10:20, 3::4] = 6.0 + rand(10, k)
    deltas[20:25, 2::4] = -30.0  # tiny boxes
    dec = coder.decode_single(deltas, ref)
    decode_cases.append({"weights": list(weights), "k": k, "boxes": fl(ref), "deltas": fl(deltas), "decoded": fl(dec)})
encode_cases = []
for weights in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
    coder = BoxCoder(weights)
    prop = random_boxes(80, 200, 150, 2, 120)
    gt = random_boxes(80, 200, 150, 2, 120)
    encode_cases.append({"weights": list(weights), "gt": fl(gt), "proposals": fl(prop), "targets": fl(coder.encode_single(gt, prop))})
out["decode"] = decode_cases
out["encode"] = encode_cases

# ---------------------------------------------------------------- clip, remove_small, area, iou
cb = random_boxes(100, 120, 90, 0.5, 80)
cb[:5] = torch.tensor([[-5.0, -3.0, 130.0, 95.0], [119.9, 89.9, 121.0, 92.0], [-10.0, -10.0, -1.0, -2.0], [10.0, 10.0, 10.0, 10.0], [0.0, 0.0, 120.0, 90.0]])
out["clip"] = {"size": [90, 120], "boxes": fl(cb), "clipped": fl(box_ops.clip_boxes_to_image(cb, (90, 120)))}
sb = torch.tensor([[0, 0, 0.001, 5], [0, 0, 0.0009999, 5], [1, 1, 1.001, 1.001], [3, 3, 3.01, 3.01], [3, 3, 3.0099, 3.02],
                   [0, 0, 1e-3, 1e-3], [5, 5, 5.0010004, 5.0010004], [2, 2, 2.0, 9], [0, 0, 0.01, 0.01], [100, 100, 100.01, 100.01],
                   [100, 100, 100.001, 100.001], [7, 7, 6, 9]], dtype=torch.float32)
sb = torch.cat([sb, random_boxes(40, 10, 10, 0.0, 0.03)])
out["small"] = {"boxes": fl(sb), "keep_1e-3": box_ops.remove_small_boxes(sb, 1e-3).tolist(), "keep_1e-2": box_ops.remove_small_boxes(sb, 1e-2).tolist()}
ia = random_boxes(30, 100, 100, 1, 60)
ib = random_boxes(25, 100, 100, 1, 60)
out["iou"] = {"a": fl(ia), "b": fl(ib), "area_a": fl(box_ops.box_area(ia)), "iou": fl(box_ops.box_iou(ia, ib))}

# ---------------------------------------------------------------- sort / topk order with ties
sort_cases = []
for n, levels in [(10, 3), (17, 3), (40, 4), (100, 5), (1000, 7), (2000, 50), (1200, 2)]:
    v = torch.randint(0, levels, (n,), generator=g).float() / 4
    sort_cases.append({"values": fl(v), "order": v.sort(0, descending=True)[1].tolist()})
out["sort"] = sort_cases
topk_cases = []
for n, levels, ks in [(100, 4, [1, 2, 30, 99, 100]), (1000, 9, [1, 15, 16, 200, 1000]), (2000, 40, [10, 31, 32, 33, 1500])]:
    v = torch.randint(0, levels, (n,), generator=g).float() / 8
    topk_cases.append({"values": fl(v), "topk": {str(k): v.topk(k)[1].tolist() for k in ks}})
out["topk"] = topk_cases

# ---------------------------------------------------------------- nms / batched_nms
nms_cases = []
for name, n, q_box, q_score, thr in [("dyadic ties", 300, 4, 16, 0.5), ("float", 400, None, None, 0.7), ("dense ties", 200, 2, 4, 0.3)]:
    b = random_boxes(n, 100, 80, 4, 40, q=q_box)
    s = dyadic(rand(n), q_score) if q_score else rand(n)
    b[-3:] = b[:3]  # exact duplicates
    s[-3:] = s[:3]
    nms_cases.append({"name": name, "threshold": thr, "boxes": fl(b), "scores": fl(s), "keep": box_ops.nms(b, s, thr).tolist()})
out["nms"] = nms_cases
bcases = []
for name, n, classes, thr in [("offset trick", 900, 5, 0.5), ("per-class loop", 1050, 7, 0.5), ("offset trick, 1000 boxes = 4000 coords", 1000, 3, 0.6)]:
    b = random_boxes(n, 120, 100, 4, 50, q=8)
    s = dyadic(rand(n), 32)
    idx = torch.randint(0, classes, (n,), generator=g)
    bcases.append({"name": name, "threshold": thr, "boxes": fl(b), "scores": fl(s), "groups": idx.tolist(),
                   "keep": box_ops.batched_nms(b, s, idx, thr).tolist()})
out["batched_nms"] = bcases

# ---------------------------------------------------------------- levels
lb = []
for side in [1, 8, 56, 111.9999, 112, 112.0001, 223.99, 224, 224.01, 447.9, 448, 448.5, 1000, 3000]:
    lb.append([10, 10, 10 + side, 10 + side])
lb = torch.tensor(lb, dtype=torch.float32)
sides = torch.exp(rand(200, 2) * math.log(1500.0)) + 0.5
xy = rand(200, 2) * 300
lb = torch.cat([lb, torch.cat([xy, xy + sides], 1)])
level_cases = []
for image_sizes, feats in [([(800, 1216)], [(200, 304), (100, 152), (50, 76), (25, 38)]),
                           ([(512, 683), (480, 700)], [(128, 176), (64, 88), (32, 44), (16, 22)]),
                           ([(100, 75)], [(25, 19), (13, 10), (7, 5), (4, 3)])]:
    fmaps = [torch.zeros(1, 1, h, w) for h, w in feats]
    scales, mapper = poolers._setup_scales(fmaps, image_sizes, 224, 4)
    level_cases.append({"image_sizes": image_sizes, "features": feats, "scales": scales, "k_min": mapper.k_min, "k_max": mapper.k_max,
                        "levels": mapper([lb]).tolist()})
out["levels"] = {"boxes": fl(lb), "cases": level_cases,
                 "detectron2": torch.clamp(torch.floor(4 + torch.log2(torch.sqrt(box_ops.box_area(lb)) / 224 + 1e-8)), min=2, max=5).to(torch.int64).sub(2).tolist()}

# ---------------------------------------------------------------- transform
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
sizes = []
t800 = GeneralizedRCNNTransform(800, 1333, MEAN, STD).eval()
for h, w in [(480, 640), (427, 640), (640, 427), (500, 375), (333, 500), (1, 1), (800, 1333), (100, 3000), (3000, 100), (612, 612), (375, 500), (599, 799), (17, 23)]:
    img = torch.zeros(3, h, w)
    il, _ = t800([img])
    sizes.append({"input": [h, w], "resized": list(il.image_sizes[0]), "batch": list(il.tensors.shape[-2:])})
pil = Image.open(os.path.join(ROOT, "data", "coco-mini", "images", "000000000009.jpg")).convert("RGB")
pil = pil.resize((64, 48), Image.BILINEAR)
rgb = np.asarray(pil, dtype=np.uint8)
x = TF.to_tensor(pil)
image_cases = []
for min_size, max_size in [(60, 100), (30, 60)]:
    tr = GeneralizedRCNNTransform(min_size, max_size, MEAN, STD).eval()
    il, _ = tr([x])
    image_cases.append({"min_size": min_size, "max_size": max_size, "resized": list(il.image_sizes[0]), "batch": list(il.tensors.shape),
                        "b64": b64(il.tensors[0])})
# two images of different sizes batched together
x2 = TF.to_tensor(pil.resize((40, 52), Image.BILINEAR))
tr = GeneralizedRCNNTransform(24, 32, MEAN, STD).eval()
il, _ = tr([x, x2])
pair = {"min_size": 24, "max_size": 32, "sizes": [list(s) for s in il.image_sizes], "batch": list(il.tensors.shape),
        "rgb2": np.asarray(pil.resize((40, 52), Image.BILINEAR), dtype=np.uint8).reshape(-1).tolist(), "b64": b64(il.tensors)}
pb = random_boxes(20, 133, 100, 1, 80)
post = []
for new, orig in [((100, 133), (48, 64)), ((800, 1066), (480, 640)), ((801, 1199), (427, 640))]:
    post.append({"resized": list(new), "original": list(orig), "boxes": fl(pb), "out": fl(resize_boxes(pb, new, orig))})
out["transform"] = {"mean": MEAN, "std": STD, "sizes_800_1333": sizes, "image": {"height": 48, "width": 64, "rgb": rgb.reshape(-1).tolist()},
                    "image_cases": image_cases, "pair": pair, "postprocess": post}

# ---------------------------------------------------------------- detectron2 preprocessing (re-expressed)
def d2_size(h, w, short, max_size):
    """ResizeShortestEdge's rule: Python floats, short side -> short, cap the long side, int(x + 0.5)."""
    scale = short * 1.0 / min(h, w)
    newh, neww = (short, scale * w) if h < w else (scale * h, short)
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    return int(newh + 0.5), int(neww + 0.5)


d2_sizes = [{"input": [h, w], "resized": list(d2_size(h, w, 800, 1333))} for h, w in
            [(480, 640), (427, 640), (640, 427), (500, 375), (333, 500), (1, 1), (100, 3000), (3000, 100), (612, 612), (599, 799), (17, 23)]]
d2_cases = []
for short, max_size, fmt, mean, std in [(24, 32, "BGR", [103.53, 116.28, 123.675], [1.0, 1.0, 1.0]),
                                        (30, 50, "RGB", [123.675, 116.28, 103.53], [58.395, 57.12, 57.375])]:
    nh, nw = d2_size(48, 64, short, max_size)
    arr = np.asarray(pil.resize((nw, nh), Image.BILINEAR), dtype=np.uint8)
    if fmt == "BGR":
        arr = arr[:, :, ::-1]
    t = torch.as_tensor(np.ascontiguousarray(arr).astype("float32").transpose(2, 0, 1))
    t = (t - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    H32, W32 = int(math.ceil(nh / 32) * 32), int(math.ceil(nw / 32) * 32)
    batch = torch.zeros(1, 3, H32, W32)
    batch[0, :, :nh, :nw] = t
    d2_cases.append({"short": short, "max_size": max_size, "format": fmt, "mean": mean, "std": std, "resized": [nh, nw],
                     "batch": list(batch.shape), "b64": b64(batch)})
pp = random_boxes(30, 60, 45, 0.2, 40)
pp[:3] = torch.tensor([[-3.0, -2.0, 10.0, 10.0], [59.0, 44.0, 70.0, 50.0], [20.0, 20.0, 20.0, 30.0]])
sx, sy = 640 / 60, 480 / 45
ob = pp.clone()
ob[:, 0::2] *= sx
ob[:, 1::2] *= sy
ob = torch.stack([ob[:, 0].clamp(min=0, max=640), ob[:, 1].clamp(min=0, max=480), ob[:, 2].clamp(min=0, max=640), ob[:, 3].clamp(min=0, max=480)], 1)
keep = ((ob[:, 2] - ob[:, 0] > 0) & (ob[:, 3] - ob[:, 1] > 0)).nonzero()[:, 0]
out["detectron2_transform"] = {"sizes_800_1333": d2_sizes, "image_cases": d2_cases,
                               "postprocess": {"resized": [45, 60], "output": [480, 640], "boxes": fl(pp), "out": fl(ob[keep]), "keep": keep.tolist()}}

# ---------------------------------------------------------------- paste
M = 28
nm = 7
masks = dyadic(torch.sigmoid(torch.randn(nm, 1, M, M, generator=g) * 3), 1024)
H, W = 40, 56
pboxes = torch.tensor([[10.3, 5.7, 40.2, 30.1], [-8.5, -6.2, 20.4, 15.9], [50.2, 30.3, 75.8, 60.6], [2.0, 2.0, 3.5, 3.0],
                       [0.0, 0.0, 63.9, 47.9], [30.6, 20.2, 31.1, 44.9], [-20.0, 10.0, 90.0, 30.5]], dtype=torch.float32)
tv = paste_masks_in_image(masks, pboxes, (H, W), padding=1)[:, 0]


def d2_paste(masks, boxes, h, w):
    """detectron2-style paste (see the docstring): one box at a time, only inside the box's region
    [max(floor(x0) - 1, 0), min(ceil(x1) + 1, w)) x (same for y), zeros elsewhere."""
    res = torch.zeros(len(masks), h, w)
    for k, (m, b) in enumerate(zip(masks, boxes)):
        x0, y0, x1, y1 = [b[i:i + 1] for i in range(4)]
        rx0, ry0 = [max(int(math.floor(float(v))) - 1, 0) for v in (b[0], b[1])]
        rx1, ry1 = min(int(math.ceil(float(b[2]))) + 1, w), min(int(math.ceil(float(b[3]))) + 1, h)
        if rx1 <= rx0 or ry1 <= ry0:
            continue
        ys = (torch.arange(ry0, ry1, dtype=torch.float32) + 0.5)
        xs = (torch.arange(rx0, rx1, dtype=torch.float32) + 0.5)
        ys = (ys - y0) / (y1 - y0) * 2 - 1
        xs = (xs - x0) / (x1 - x0) * 2 - 1
        grid = torch.stack([xs[None, :].expand(len(ys), len(xs)), ys[:, None].expand(len(ys), len(xs))], dim=2)[None]
        res[k, ry0:ry1, rx0:rx1] = F.grid_sample(m[None], grid, align_corners=False)[0, 0]
    return res


d2 = d2_paste(masks, pboxes, H, W)
out["paste"] = {"height": H, "width": W, "mask_size": M, "masks": fl(masks), "boxes": fl(pboxes),
                "torchvision_b64": b64(tv), "torchvision_binary": (tv > 0.5).to(torch.uint8).reshape(nm, -1).sum(1).tolist(),
                "detectron2_b64": b64(d2), "detectron2_binary_count": (d2 >= 0.5).reshape(nm, -1).sum(1).tolist()}

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as fh:
    json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, **out}, fh, separators=(",", ":"))
print(OUT, os.path.getsize(OUT), "bytes")
