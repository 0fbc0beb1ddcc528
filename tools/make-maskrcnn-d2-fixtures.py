#!/usr/bin/python3
"""Mask R-CNN parity fixtures for the `detectron2` preset (issue 13).

detectron2 is not installable here (Debian ships no package), so this script RE-IMPLEMENTS detectron2's
inference steps for mask_rcnn_R_50_FPN_3x in plain torch / torchvision (Debian torch 1.13, torchvision
0.14), following detectron2's source (modeling/meta_arch/rcnn.py, backbone/resnet.py + fpn.py,
anchor_generator.py, proposal_generator/rpn.py + proposal_utils.py, poolers.py, roi_heads/roi_heads.py +
fast_rcnn.py + mask_head.py, layers/mask_ops.py, postprocessing.py, data/transforms). Where detectron2
calls torchvision (roi_align, batched_nms) this script calls the same functions. It is NOT detectron2's
output.

Run: /usr/bin/python3 tools/make-maskrcnn-d2-fixtures.py  → test/fixtures/maskrcnn-d2/

Model: the narrow network of tools/make-maskrcnn-fixtures.py (stem 8, FPN 16, box head 32, mask head 16,
20 foreground classes), weights from its seeded init_weights (seed + 7), renamed to detectron2's keys and
run with detectron2's MSRA ResNet (STRIDE_IN_1X1: the stride of the first block of res3..res5 is in the
1x1 conv1 and in the shortcut), detectron2's predictor layout (cls_score: K+1 rows with background LAST,
bbox_pred: 4K rows, mask predictor: K channels). Input BGR 0..255 minus PIXEL_MEAN (std 1),
ResizeShortestEdge(320, 512) (PIL bilinear on the uint8 image), padded to 32.

Also writes two tiny pickles of numpy arrays (model-zoo .pkl style) for the unpickler test.
"""
import importlib.util
import json
import math
import os
import pickle
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import batched_nms, roi_align

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
OUT = os.path.join(ROOT, "test", "fixtures", "maskrcnn-d2")
# --size SHORT,MAX: the same dump at another input size into .cache/fixtures/maskrcnn-d2-SHORT/ (git-ignored),
# e.g. --size 800,1333 (detectron2's defaults) for an ad-hoc check of the levels the 320 px fixture never pools from
if "--size" in sys.argv:
    _s, _m = sys.argv[sys.argv.index("--size") + 1].split(",")
    SIZE_OVERRIDE = (int(_s), int(_m))
    OUT = os.path.join(ROOT, ".cache", "fixtures", "maskrcnn-d2-%s" % _s)
else:
    SIZE_OVERRIDE = None
spec = importlib.util.spec_from_file_location("tvfix", os.path.join(HERE, "make-maskrcnn-fixtures.py"))
tvfix = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tvfix)

SEED = tvfix.SEED + 7
IMAGES = ["000000000009", "000000166918"]
SHORT, MAX_SIZE = 320, 512
if SIZE_OVERRIDE:
    SHORT, MAX_SIZE = SIZE_OVERRIDE
PIXEL_MEAN = [103.530, 116.280, 123.675]
PIXEL_STD = [1.0, 1.0, 1.0]
K = 20
STRIDES = [4, 8, 16, 32, 64]
SIZES = [32, 64, 128, 256, 512]
RATIOS = [0.5, 1.0, 2.0]
PRE_NMS, POST_NMS, RPN_NMS, MIN_BOX = 1000, 1000, 0.7, 0.0
SCORE_THRESH, NMS_THRESH, TOPK = 0.05, 0.5, 100
CLAMP = math.log(1000.0 / 16)
EPS = 1e-5


# ---------------------------------------------------------------- weights in detectron2's layout
def detectron2_state_dict():
    model = tvfix.init_weights(tvfix.build_narrow(), SEED)
    tv = model.state_dict()
    sd = OrderedDict()
    for k, v in tv.items():
        p = k.split(".")
        if k.startswith("backbone.body.conv1."):
            n = "backbone.bottom_up.stem.conv1.weight"
        elif k.startswith("backbone.body.bn1."):
            n = "backbone.bottom_up.stem.conv1.norm." + p[-1]
        elif k.startswith("backbone.body.layer"):
            stage = "res%d" % (int(p[2][5:]) + 1)
            base = "backbone.bottom_up.%s.%s." % (stage, p[3])
            if p[4].startswith("conv"):
                n = base + p[4] + ".weight"
            elif p[4].startswith("bn"):
                n = base + "conv" + p[4][2:] + ".norm." + p[5]
            elif p[4] == "downsample" and p[5] == "0":
                n = base + "shortcut.weight"
            else:
                n = base + "shortcut.norm." + p[6]
        elif k.startswith("backbone.fpn.inner_blocks."):
            n = "backbone.fpn_lateral%d.%s" % (int(p[3]) + 2, p[-1])
        elif k.startswith("backbone.fpn.layer_blocks."):
            n = "backbone.fpn_output%d.%s" % (int(p[3]) + 2, p[-1])
        elif k.startswith("rpn.head.conv."):
            n = "proposal_generator.rpn_head.conv." + p[-1]
        elif k.startswith("rpn.head.cls_logits."):
            n = "proposal_generator.rpn_head.objectness_logits." + p[-1]
        elif k.startswith("rpn.head.bbox_pred."):
            n = "proposal_generator.rpn_head.anchor_deltas." + p[-1]
        elif k.startswith("roi_heads.box_head.fc6."):
            n = "roi_heads.box_head.fc1." + p[-1]
        elif k.startswith("roi_heads.box_head.fc7."):
            n = "roi_heads.box_head.fc2." + p[-1]
        elif k.startswith("roi_heads.box_predictor.cls_score."):
            n, v = "roi_heads.box_predictor.cls_score." + p[-1], torch.cat([v[1:], v[:1]])   # background last
        elif k.startswith("roi_heads.box_predictor.bbox_pred."):
            n, v = "roi_heads.box_predictor.bbox_pred." + p[-1], v[4:]                      # no background box
        elif k.startswith("roi_heads.mask_head."):
            n = "roi_heads.mask_head.mask_fcn%d.%s" % (int(p[2]) + 1, p[-1])
        elif k.startswith("roi_heads.mask_predictor.conv5_mask."):
            n = "roi_heads.mask_head.deconv." + p[-1]
        elif k.startswith("roi_heads.mask_predictor.mask_fcn_logits."):
            n, v = "roi_heads.mask_head.predictor." + p[-1], v[1:]                          # K channels
        else:
            raise KeyError(k)
        sd[n] = v.clone().contiguous()
    # the body sees 0..255 pixels minus the mean (std 1), not torchvision's unit-std input: the stem's
    # weights are divided by 58 so that the activations have the same scale as in the torchvision fixture
    sd["backbone.bottom_up.stem.conv1.weight"] = sd["backbone.bottom_up.stem.conv1.weight"] / 58.0
    sd["pixel_mean"] = torch.tensor(PIXEL_MEAN).view(3, 1, 1)
    sd["pixel_std"] = torch.tensor(PIXEL_STD).view(3, 1, 1)
    return sd


# ---------------------------------------------------------------- detectron2's steps, re-implemented
def frozen_bn(x, sd, p):
    scale = sd[p + ".weight"] * (sd[p + ".running_var"] + EPS).rsqrt()
    bias = sd[p + ".bias"] - sd[p + ".running_mean"] * scale
    return x * scale.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def conv_norm(x, sd, p, stride, pad):
    return frozen_bn(F.conv2d(x, sd[p + ".weight"], None, stride, pad), sd, p + ".norm")


def bottom_up(x, sd):
    x = F.relu(conv_norm(x, sd, "backbone.bottom_up.stem.conv1", 2, 3))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    outs = {}
    for s in (2, 3, 4, 5):
        i = 0
        while ("backbone.bottom_up.res%d.%d.conv1.weight" % (s, i)) in sd:
            p = "backbone.bottom_up.res%d.%d" % (s, i)
            stride = 2 if (i == 0 and s > 2) else 1
            y = F.relu(conv_norm(x, sd, p + ".conv1", stride, 0))   # STRIDE_IN_1X1
            y = F.relu(conv_norm(y, sd, p + ".conv2", 1, 1))
            y = conv_norm(y, sd, p + ".conv3", 1, 0)
            sc = conv_norm(x, sd, p + ".shortcut", stride, 0) if (p + ".shortcut.weight") in sd else x
            x = F.relu(y + sc)
            i += 1
        outs["res%d" % s] = x
    return outs


def conv(x, sd, p, pad):
    return F.conv2d(x, sd[p + ".weight"], sd[p + ".bias"], 1, pad)


def fpn(x, sd):
    c = bottom_up(x, sd)
    prev = conv(c["res5"], sd, "backbone.fpn_lateral5", 0)
    results = [conv(prev, sd, "backbone.fpn_output5", 1)]
    for s in (4, 3, 2):
        top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
        prev = conv(c["res%d" % s], sd, "backbone.fpn_lateral%d" % s, 0) + top_down
        results.insert(0, conv(prev, sd, "backbone.fpn_output%d" % s, 1))
    results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0))   # LastLevelMaxPool
    return results   # p2..p6


def cell_anchors(size):
    out = []
    for r in RATIOS:   # generate_cell_anchors: size-major, python floats
        area = size ** 2.0
        w = math.sqrt(area / r)
        h = r * w
        out.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(out)


def grid_anchors(feats):
    out = []
    for f, stride, size in zip(feats, STRIDES, SIZES):
        H, W = f.shape[-2:]
        sx = torch.arange(0, W * stride, step=stride, dtype=torch.float32)
        sy = torch.arange(0, H * stride, step=stride, dtype=torch.float32)
        yy, xx = torch.meshgrid(sy, sx, indexing="ij")
        xx, yy = xx.reshape(-1), yy.reshape(-1)
        shifts = torch.stack((xx, yy, xx, yy), dim=1)
        out.append((shifts.view(-1, 1, 4) + cell_anchors(size).view(1, -1, 4)).reshape(-1, 4))
    return out


def apply_deltas(deltas, boxes, weights):
    deltas = deltas.float()
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=CLAMP)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=CLAMP)
    pcx = dx * widths[:, None] + ctr_x[:, None]
    pcy = dy * heights[:, None] + ctr_y[:, None]
    pw = torch.exp(dw) * widths[:, None]
    ph = torch.exp(dh) * heights[:, None]
    x1, y1, x2, y2 = pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph
    return torch.stack((x1, y1, x2, y2), dim=-1).view(deltas.shape)


def clip(boxes, hw):
    h, w = hw
    x1 = boxes[:, 0].clamp(min=0, max=w)
    y1 = boxes[:, 1].clamp(min=0, max=h)
    x2 = boxes[:, 2].clamp(min=0, max=w)
    y2 = boxes[:, 3].clamp(min=0, max=h)
    return torch.stack((x1, y1, x2, y2), dim=-1)


def nonempty(boxes, t=0.0):
    return ((boxes[:, 2] - boxes[:, 0]) > t) & ((boxes[:, 3] - boxes[:, 1]) > t)


def rpn(feats, sd, image_size):
    logits, deltas = [], []
    for f in feats:
        t = F.relu(conv(f, sd, "proposal_generator.rpn_head.conv", 1))
        o = conv(t, sd, "proposal_generator.rpn_head.objectness_logits", 0)
        d = conv(t, sd, "proposal_generator.rpn_head.anchor_deltas", 0)
        logits.append(o.permute(0, 2, 3, 1).flatten(1))
        N, _, Hi, Wi = d.shape
        d = d.view(N, -1, 4, Hi, Wi).permute(0, 3, 4, 1, 2).flatten(1, -2)
        deltas.append(d)
    anchors = grid_anchors(feats)
    proposals = [apply_deltas(d[0], a, (1.0, 1.0, 1.0, 1.0)) for d, a in zip(deltas, anchors)]
    # find_top_rpn_proposals
    ts, tp, lv = [], [], []
    for level, (p, l) in enumerate(zip(proposals, logits)):
        k = min(l.shape[1], PRE_NMS)
        s, idx = l[0].topk(k)
        ts.append(s)
        tp.append(p[idx])
        lv.append(torch.full((k,), level, dtype=torch.int64))
    scores, boxes, lvl = torch.cat(ts), torch.cat(tp), torch.cat(lv)
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
    boxes, scores, lvl = boxes[valid], scores[valid], lvl[valid]
    boxes = clip(boxes, image_size)
    keep = nonempty(boxes, MIN_BOX)
    boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
    keep = batched_nms(boxes, scores, lvl, RPN_NMS)[:POST_NMS]
    info = OrderedDict(per_level=[int(l.shape[1]) for l in logits], candidates=int(valid.sum()), after_nms=int(len(batched_nms(boxes, scores, lvl, RPN_NMS))))
    return boxes[keep], scores[keep], logits, deltas, anchors, info


def assign_levels(boxes):
    sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    lv = torch.floor(4 + torch.log2(sizes / 224 + 1e-8))
    return (torch.clamp(lv, min=2, max=5) - 2).to(torch.int64)


def pool(feats, boxes, size):
    lv = assign_levels(boxes)
    out = torch.zeros(len(boxes), feats[0].shape[1], size, size)
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1)
    for l in range(4):
        inds = torch.nonzero(lv == l).squeeze(1)
        out[inds] = roi_align(feats[l], rois[inds], (size, size), 1.0 / STRIDES[l], 0, True)
    return out, lv


def do_paste_mask(mask, box, img_h, img_w):
    """layers/mask_ops.py _do_paste_mask for one mask, skip_empty (CPU)."""
    masks, boxes = mask[None, None], box[None]
    x0_int, y0_int = torch.clamp(boxes.min(dim=0).values.floor()[:2] - 1, min=0).to(dtype=torch.int32)
    x1_int = torch.clamp(boxes[:, 2].max().ceil() + 1, max=img_w).to(dtype=torch.int32)
    y1_int = torch.clamp(boxes[:, 3].max().ceil() + 1, max=img_h).to(dtype=torch.int32)
    x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)
    img_y = torch.arange(y0_int, y1_int, dtype=torch.float32) + 0.5
    img_x = torch.arange(x0_int, x1_int, dtype=torch.float32) + 0.5
    img_y = (img_y - y0) / (y1 - y0) * 2 - 1
    img_x = (img_x - x0) / (x1 - x0) * 2 - 1
    gx = img_x[:, None, :].expand(1, img_y.size(1), img_x.size(1))
    gy = img_y[:, :, None].expand(1, img_y.size(1), img_x.size(1))
    grid = torch.stack([gx, gy], dim=3)
    img = F.grid_sample(masks, grid, align_corners=False)
    return img[:, 0], (slice(y0_int, y1_int), slice(x0_int, x1_int))


def load_bgr_resized(stem):
    img = Image.open(os.path.join(ROOT, "data", "demo", "images", stem + ".jpg")).convert("RGB")
    w, h = img.size
    # ResizeShortestEdge.get_output_shape
    size = SHORT * 1.0
    scale = size / min(h, w)
    newh, neww = (size, scale * w) if h < w else (scale * h, size)
    if max(newh, neww) > MAX_SIZE:
        scale = MAX_SIZE * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    newh, neww = int(newh + 0.5), int(neww + 0.5)
    arr = np.asarray(img)[:, :, ::-1]   # BGR, as detectron2 reads it
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(arr)).resize((neww, newh), Image.BILINEAR))
    return (h, w), torch.as_tensor(np.ascontiguousarray(resized.astype("float32").transpose(2, 0, 1)))


def run_image(sd, stem, w):
    (h0, w0), x = load_bgr_resized(stem)
    x = (x - sd["pixel_mean"]) / sd["pixel_std"]
    H, W = x.shape[-2:]
    Hp, Wp = int(math.ceil(H / 32) * 32), int(math.ceil(W / 32) * 32)
    batch = torch.zeros(1, 3, Hp, Wp)
    batch[0, :, :H, :W] = x
    rec = OrderedDict(stem=stem, file="data/demo/images/%s.jpg" % stem, original_size=[h0, w0], image_size=[H, W], batched_shape=[1, 3, Hp, Wp],
                      input_sum=float(batch.double().sum()))
    feats = fpn(batch, sd)
    rec["fpn"] = [OrderedDict(shape=list(f.shape[1:]), sum=float(f.double().sum()), abs_sum=float(f.double().abs().sum())) for f in feats]
    props, plogits, logits, deltas, anchors, info = rpn(feats, sd, (H, W))
    rec["rpn"] = info
    rec["rpn_objectness_sum"] = float(torch.cat(logits, 1).double().sum())
    rec["anchors_sum"] = float(torch.cat(anchors).double().sum())
    rec["proposals"] = w(stem + ".proposals.f32", props)
    rec["proposal_logits"] = w(stem + ".proposal_logits.f32", plogits)
    # box head
    pooled, plv = pool(feats[:4], props, 7)
    rec["proposals_per_level"] = torch.bincount(plv, minlength=4).tolist()
    y = pooled.flatten(1)
    y = F.relu(F.linear(y, sd["roi_heads.box_head.fc1.weight"], sd["roi_heads.box_head.fc1.bias"]))
    y = F.relu(F.linear(y, sd["roi_heads.box_head.fc2.weight"], sd["roi_heads.box_head.fc2.bias"]))
    cls = F.linear(y, sd["roi_heads.box_predictor.cls_score.weight"], sd["roi_heads.box_predictor.cls_score.bias"])
    reg = F.linear(y, sd["roi_heads.box_predictor.bbox_pred.weight"], sd["roi_heads.box_predictor.bbox_pred.bias"])
    rec["class_logits"] = w(stem + ".class_logits.f32", cls)
    # fast_rcnn_inference_single_image
    boxes = apply_deltas(reg, props, (10.0, 10.0, 5.0, 5.0))
    scores = F.softmax(cls, dim=-1)
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    boxes, scores = boxes[valid], scores[valid]
    scores = scores[:, :-1]
    nreg = boxes.shape[1] // 4
    boxes = clip(boxes.reshape(-1, 4), (H, W)).view(-1, nreg, 4)
    fmask = scores > SCORE_THRESH
    finds = fmask.nonzero()
    boxes = boxes[fmask]
    scores = scores[fmask]
    keep = batched_nms(boxes, scores, finds[:, 1], NMS_THRESH)
    rec["box_nms"] = OrderedDict(candidates=int(len(scores)), after_nms=int(len(keep)))
    keep = keep[:TOPK]
    dboxes, dscores, dclasses = boxes[keep], scores[keep], finds[keep][:, 1]
    rec["detections_resized"] = OrderedDict(boxes=tvfix.nested(dboxes), scores=tvfix.nested(dscores), classes=dclasses.tolist())
    # mask head
    mp, _ = pool(feats[:4], dboxes, 14)
    for i in range(1, 5):
        mp = F.relu(conv(mp, sd, "roi_heads.mask_head.mask_fcn%d" % i, 1))
    mp = F.relu(F.conv_transpose2d(mp, sd["roi_heads.mask_head.deconv.weight"], sd["roi_heads.mask_head.deconv.bias"], stride=2))
    ml = F.conv2d(mp, sd["roi_heads.mask_head.predictor.weight"], sd["roi_heads.mask_head.predictor.bias"])
    probs = ml[torch.arange(len(dclasses)), dclasses][:, None].sigmoid()
    rec["mask_probs"] = w(stem + ".mask_probs.f32", probs)
    # detector_postprocess
    sx, sy = w0 / W, h0 / H
    ob = dboxes.clone()
    ob[:, 0::2] *= sx
    ob[:, 1::2] *= sy
    ob = clip(ob, (h0, w0))
    ne = nonempty(ob)
    ob, os_, oc, op = ob[ne], dscores[ne], dclasses[ne], probs[ne]
    masks = torch.zeros(len(ob), h0, w0, dtype=torch.bool)
    for i in range(len(ob)):
        chunk, inds = do_paste_mask(op[i, 0], ob[i], h0, w0)
        masks[(slice(i, i + 1),) + inds] = chunk >= 0.5
    rec["detections"] = OrderedDict(boxes=tvfix.nested(ob), scores=tvfix.nested(os_), classes=oc.tolist(),
                                    labels=(oc + 1).tolist(), mask_runs=[tvfix.rle_runs(m) for m in masks],
                                    mask_areas=[int(m.sum()) for m in masks])
    rec["detection_score_gaps"] = tvfix.gap_stats(dscores)
    rec["proposal_logit_gaps"] = tvfix.gap_stats(plogits)
    return rec, cls


def tiny_pickles():
    arrays = OrderedDict()
    arrays["a.f4"] = np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1
    arrays["b.f8"] = np.array([1.5, -2.25, 1e-300], dtype=np.float64)
    arrays["c.fortran"] = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    arrays["d.bigendian"] = np.array([[1.0, 2.5], [-3.0, 4.125]], dtype=">f4")
    arrays["e.i8"] = np.array([-1, 2 ** 40, 7], dtype=np.int64)
    arrays["f.u1.scalar"] = np.array(200, dtype=np.uint8)
    arrays["g.empty"] = np.zeros((0, 4), dtype=np.float32)
    obj = {"model": arrays, "__author__": "tools/make-maskrcnn-d2-fixtures.py", "matching_heuristics": True}
    for proto in (2, 4):
        with open(os.path.join(OUT, "tiny_p%d.pkl" % proto), "wb") as f:
            pickle.dump(obj, f, protocol=proto)
    return {k: OrderedDict(dtype=str(v.dtype), shape=list(v.shape), values=v.reshape(-1, order="C").tolist()) for k, v in arrays.items()}


README = """# Mask R-CNN parity fixtures, `detectron2` preset (issue 13)

**These are NOT detectron2's outputs.** detectron2 cannot be installed here, so
`/usr/bin/python3 tools/make-maskrcnn-d2-fixtures.py` (Debian torch {torch}, torchvision 0.14, CPU, 1 thread,
float32) RE-IMPLEMENTS detectron2's inference steps for mask_rcnn_R_50_FPN_3x in plain torch/torchvision,
following detectron2's source: ResNet with FrozenBN and STRIDE_IN_1X1 (backbone/resnet.py), FPN with
LastLevelMaxPool (backbone/fpn.py), DefaultAnchorGenerator (float64 cell anchors, strides 4..64, offset 0),
StandardRPNHead + find_top_rpn_proposals (per-level topk of the logits, non-finite filter, clip, nonempty,
torchvision batched_nms by level at 0.7, post-NMS top 1000; scores stay logits), ROIPooler with
ROIAlignV2 (torchvision roi_align aligned=True, sampling 0; level floor(4 + log2(sqrt(area)/224 + 1e-8))
clamped to 2..5), FastRCNNConvFCHead (2 FC), FastRCNNOutputLayers + fast_rcnn_inference_single_image
(softmax, background LAST, class-specific Box2BoxTransform(10, 10, 5, 5), clip, score > 0.05, batched_nms by
class at 0.5, top 100), MaskRCNNConvUpsampleHead + mask_rcnn_inference (sigmoid of the predicted class),
detector_postprocess (scale, clip, nonempty) and paste_masks_in_image (CPU: _do_paste_mask with
grid_sample, skip_empty, one mask at a time, >= 0.5). Input: ResizeShortestEdge(320, 512) with PIL bilinear
on the uint8 image, BGR, minus PIXEL_MEAN {mean}, PIXEL_STD 1, zero-padded to a multiple of 32.
Where detectron2 calls torchvision (roi_align, batched_nms) the script calls the same functions.
Two runs write identical bytes.

## Model
The narrow network of tools/make-maskrcnn-fixtures.py (stem 8, stages 32/64/128/256, FPN 16, RPN 3
anchors, box head 32, mask head 4 x 16 + deconv 16, **20 foreground classes**), weights from its seeded
`init_weights` (seed {seed}), renamed to detectron2's keys (`backbone.bottom_up.stem.conv1.*`,
`backbone.bottom_up.res2..5.i.conv1..3[.norm]`, `shortcut`, `backbone.fpn_lateral2..5`, `fpn_output2..5`,
`proposal_generator.rpn_head.{{conv, objectness_logits, anchor_deltas}}`, `roi_heads.box_head.fc1/fc2`,
`roi_heads.box_predictor.{{cls_score, bbox_pred}}`, `roi_heads.mask_head.{{mask_fcn1..4, deconv, predictor}}`,
plus `pixel_mean`/`pixel_std`), in detectron2's class layout (cls_score 21 rows with background LAST,
bbox_pred 80 rows, mask predictor 20 channels). The stem's weights are divided by 58 (the input is 0..255,
not unit-std), and cls_score's bias is centred on image 1's proposals as in the torchvision fixture. The
network is run with detectron2's MSRA ResNet convention: the stride of res3..res5's first block is in
its 1x1 conv1 (and the shortcut).

## Files
- `narrow_maskrcnn_d2.pth`: `torch.save({{"model": state_dict, "__author__": ...}})` (zip).
- `tiny_p2.pkl`, `tiny_p4.pkl`: model-zoo style pickles `{{"model": {{name: numpy array}}, "__author__", "matching_heuristics"}}`
  (protocols 2 and 4) of a few small arrays: float32, float64, Fortran-order, big-endian, int64, 0-d uint8, empty;
  their values are in `manifest.json` `tiny_pickles`.
- `manifest.json`: config, state-dict keys and shapes, per image: sizes, input and FPN sums, RPN counts,
  `detections_resized` (boxes in the resized image, scores, detectron2 classes 0..19) and `detections` after
  detector_postprocess (original-image boxes, scores, `classes` 0..19, `labels` = classes + 1 — the label
  convention of maskdistill, background 0 — and `mask_runs`: [start, length] runs of the pasted binary mask
  over the row-major h x w image).
- `<stem>.proposals.f32` [1000, 4] and `.proposal_logits.f32` [1000] (resized-image coordinates),
  `.class_logits.f32` [1000, 21] (detectron2's column order: 20 classes then background),
  `.mask_probs.f32` [D, 1, 28, 28] (sigmoid of the detection's class). float32 little-endian, row-major.
"""


def write_readme(m):
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README.format(torch=torch.__version__, mean=PIXEL_MEAN, seed=SEED))
        f.write("\n## Images\n\n| image | original [h, w] | resized [H, W] | RPN after NMS | box candidates | after NMS | detections | proposals per RoI level |\n|---|---|---|---|---|---|---|---|\n")
        for r in m["images"]:
            f.write("| %s | %s | %s | %d | %d | %d | %d | %s |\n" % (r["stem"], r["original_size"], r["image_size"], r["rpn"]["after_nms"],
                    r["box_nms"]["candidates"], r["box_nms"]["after_nms"], len(r["detections"]["scores"]), r["proposals_per_level"]))


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    sd = detectron2_state_dict()
    files = OrderedDict()

    def dummy(name, t):
        return {"file": name}

    # calibration as in the torchvision fixture: subtract each class's mean logit over image 1's proposals
    with torch.no_grad():
        _, cls = run_image(sd, IMAGES[0], dummy)
        sd["roi_heads.box_predictor.cls_score.bias"] -= cls.mean(0)

    def writer(name, t):
        a = np.ascontiguousarray(t.detach().numpy().astype("<f4"))
        a.tofile(os.path.join(OUT, name))
        files[name] = list(a.shape)
        return {"file": name, "shape": list(a.shape)}

    with torch.no_grad():
        recs = [run_image(sd, s, writer)[0] for s in IMAGES]
    torch.save({"model": sd, "__author__": "tools/make-maskrcnn-d2-fixtures.py"}, os.path.join(OUT, "narrow_maskrcnn_d2.pth"))
    tiny = tiny_pickles()
    manifest = OrderedDict(
        generator="tools/make-maskrcnn-d2-fixtures.py, torch %s (CPU, 1 thread, float32) - a re-implementation of detectron2's inference steps, not detectron2's output" % torch.__version__,
        config=OrderedDict(short_edge=SHORT, max_size=MAX_SIZE, pixel_mean=PIXEL_MEAN, pixel_std=PIXEL_STD, format="BGR", num_classes=K,
                           rpn=OrderedDict(pre_nms_topk=PRE_NMS, post_nms_topk=POST_NMS, nms=RPN_NMS, min_box_size=MIN_BOX),
                           roi=OrderedDict(score_thresh=SCORE_THRESH, nms=NMS_THRESH, topk=TOPK, pooler="ROIAlignV2 sampling 0"), seed=SEED),
        state_dict=[[k, list(v.shape)] for k, v in sd.items()],
        images=recs, files=files, tiny_pickles=tiny)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, separators=(",", ":"))
    write_readme(manifest)
    for r in recs:
        print(r["stem"], r["image_size"], r["rpn"], r["box_nms"], "dets", len(r["detections"]["scores"]), "labels", r["detections"]["labels"][:15],
              "areas", r["detections"]["mask_areas"][:10], "gaps", r["detection_score_gaps"], r["proposals_per_level"])
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print("total %.2f MB" % (total / 1e6))


if __name__ == "__main__":
    main()
