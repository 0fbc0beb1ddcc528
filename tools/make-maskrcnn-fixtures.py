#!/usr/bin/python3
"""Mask R-CNN parity fixtures for the `torchvision` preset (issue 13), made with torchvision's own classes.

Run with Debian's python3 (torch 1.13 + torchvision 0.14): /usr/bin/python3 tools/make-maskrcnn-fixtures.py
(add --full to also write the real-width dump into .cache/fixtures/maskrcnn-full/, see below)

The model is torchvision.models.detection.MaskRCNN built exactly as maskrcnn_resnet50_fpn (v1) builds it —
ResNet-50 body ([3, 4, 6, 3] Bottleneck v1.5) with FrozenBatchNorm2d (eps 1e-5), BackboneWithFPN over
layer1..layer4 with LastLevelMaxPool, default AnchorGenerator / RPNHead / MultiScaleRoIAlign poolers /
TwoMLPHead / FastRCNNPredictor / MaskRCNNHeads / MaskRCNNPredictor — but NARROW so that the checkpoint can
be committed: stem width 8 (stage outputs 32/64/128/256 channels), FPN 16 channels, box head 32, mask head
4 x 16 + deconv 16, 21 classes; min_size 320, max_size 512; box_score_thresh 0.0; every other argument at
torchvision 0.14's defaults. The state-dict keys are exactly those of maskrcnn_resnet50_fpn (checked
against the real builder here).

Weights come from a seeded torch.Generator (every run writes identical files); FrozenBatchNorm statistics
and affine are perturbed so they matter; the RPN objectness and the class/box/mask predictors are scaled so
that scores are well separated (parity is not decided by float noise).

Each image (data/demo/images/000000000009.jpg, 500x375, and 000000166918.jpg, 375x500, 45 objects) goes
through the model ALONE (batch of 1, as `detect` runs), in eval mode, float32, 1 thread, under
torch.no_grad(), by calling the submodules step by step as GeneralizedRCNN.forward does; the result is
checked to be identical to model([image]).

test/fixtures/maskrcnn/ (see README.md there): narrow_maskrcnn.pth (state dict, zip format), manifest.json
(configuration, shapes, small arrays, files), and the *.f32 files (float32 little-endian, row-major).

--full: the same dump for the real-width maskrcnn_resnet50_fpn (91 classes, min_size 800, max_size 1333,
other defaults as above, random weights with the same rules, seed + 1) into .cache/fixtures/maskrcnn-full/
(git-ignored, not committed): its state dict, manifest.json and the same .f32 files as the narrow dump.
"""
import json
import math
import os
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import maskrcnn_inference
from torchvision.models.detection.rpn import concat_box_prediction_layers
from torchvision.models.resnet import Bottleneck, ResNet, resnet50
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "test", "fixtures", "maskrcnn")
FULL_OUT = os.path.join(ROOT, ".cache", "fixtures", "maskrcnn-full")
IMAGES = ["000000000009", "000000166918"]
SEED = 20261203
LEVELS = ["0", "1", "2", "3", "pool"]

# Scale factors applied on top of the fan-in init (see init_weights): they spread the scores.
RPN_CLS_GAIN = 2.0      # objectness logits: std ~1, range about -4..4 (sigmoid spread, never saturated)
RPN_BOX_GAIN = 0.5      # RPN deltas: std ~0.2
CLS_GAIN = 7.0          # class logits: std ~1.7, range about -11..17; mean top class probability ~0.3 (1/21 = 0.048)
BOX_GAIN = 1.0          # box-head deltas (before the 10/10/5/5 weights): std ~0.4
MASK_GAIN = 5.0         # mask logits: std ~1.3, about 60 % of 28x28 mask cells above 0.5
RESIDUAL_GAIN = 0.3     # last conv of each Bottleneck: keeps the residual stream from growing 2x per block
FPN_GAIN = 0.15         # FPN convs (no ReLU after them)
FPN_LEVEL_GAIN = [0.5, 0.8, 1.6, 2.0]  # FPN output convs per level: coarser levels win more proposals
DECONV_TAP_NOISE = 0.25  # per-tap part of the mask head's ConvTranspose2d weights (relative to the shared part)
MASK_BIAS = 0.0         # added to the mask logits' bias (kept as a knob; 0 gives masks covering ~60 %)


class NarrowResNet(ResNet):
    """torchvision's ResNet with a configurable stem width (torchvision fixes it at 64) and FrozenBatchNorm2d;
    the stages are built by torchvision's own _make_layer."""

    def __init__(self, stem, layers=(3, 4, 6, 3)):
        nn.Module.__init__(self)
        self._norm_layer = FrozenBatchNorm2d
        self.inplanes = stem
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(Bottleneck, stem, layers[0])
        self.layer2 = self._make_layer(Bottleneck, stem * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(Bottleneck, stem * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(Bottleneck, stem * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(stem * 8 * Bottleneck.expansion, 1000)


NARROW_KW = dict(min_size=320, max_size=512, box_score_thresh=0.0)
FULL_KW = dict(box_score_thresh=0.0)


def build_narrow():
    body = NarrowResNet(8)
    # _resnet_fpn_extractor(body, 3) with out_channels 16 instead of its fixed 256
    for name, p in body.named_parameters():
        if all(not name.startswith(l) for l in ["layer4", "layer3", "layer2"]):
            p.requires_grad_(False)
    in_channels_stage2 = body.inplanes // 8
    backbone = BackboneWithFPN(
        body,
        {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        [in_channels_stage2 * 2 ** (i - 1) for i in [1, 2, 3, 4]],
        16,
        extra_blocks=LastLevelMaxPool(),
    )
    return MaskRCNN(
        backbone,
        num_classes=None,
        box_head=TwoMLPHead(16 * 7 * 7, 32),
        box_predictor=FastRCNNPredictor(32, 21),
        mask_head=MaskRCNNHeads(16, (16, 16, 16, 16), 1),
        mask_predictor=MaskRCNNPredictor(16, 16, 21),
        **NARROW_KW,
    )


def build_full():
    body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    return MaskRCNN(_resnet_fpn_extractor(body, 3), num_classes=91, **FULL_KW)


def init_weights(model, seed):
    """Deterministic weights from one torch.Generator, in sorted state-dict order.

    FrozenBatchNorm2d: weight ~ U(0.5, 1.5), bias ~ N(0, 0.1), running_mean ~ N(0, 0.1), running_var ~ U(0.5, 2).
    Conv / ConvTranspose / Linear weights ~ N(0, gain^2 * 2 / fan_in) (He); biases ~ N(0, 0.05^2);
    gain 1 except the Bottlenecks' conv3 (RESIDUAL_GAIN), the FPN (FPN_GAIN) and the predictors
    (RPN_CLS_GAIN, RPN_BOX_GAIN, CLS_GAIN, BOX_GAIN, MASK_GAIN); the FPN output convs (layer_blocks.i)
    get FPN_GAIN * FPN_LEVEL_GAIN[i] so that proposals come from every level; mask_fcn_logits.bias + MASK_BIAS;
    the mask head's ConvTranspose2d weight is a part shared by the 2x2 taps plus DECONV_TAP_NOISE x that per tap."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    kinds = {}
    for mname, m in model.named_modules():
        for pname in list(m._parameters) + list(m._buffers):
            kinds[(mname + "." + pname) if mname else pname] = m
    gains = {
        "rpn.head.cls_logits.weight": RPN_CLS_GAIN,
        "rpn.head.bbox_pred.weight": RPN_BOX_GAIN,
        "roi_heads.box_predictor.cls_score.weight": CLS_GAIN,
        "roi_heads.box_predictor.bbox_pred.weight": BOX_GAIN,
        "roi_heads.mask_predictor.mask_fcn_logits.weight": MASK_GAIN,
    }
    sd = model.state_dict()
    for name in sorted(sd):
        t = sd[name]
        m = kinds[name]
        shape = tuple(t.shape)
        leaf = name.rsplit(".", 1)[1]
        if isinstance(m, FrozenBatchNorm2d):
            if leaf == "weight":
                v = torch.rand(shape, generator=g) + 0.5
            elif leaf == "bias":
                v = torch.randn(shape, generator=g) * 0.1
            elif leaf == "running_mean":
                v = torch.randn(shape, generator=g) * 0.1
            else:
                v = torch.rand(shape, generator=g) * 1.5 + 0.5
        elif leaf == "bias":
            v = torch.randn(shape, generator=g) * 0.05
            if name == "roi_heads.mask_predictor.mask_fcn_logits.bias":
                v = v + MASK_BIAS
        else:
            if isinstance(m, nn.ConvTranspose2d):
                fan_in = shape[0]  # stride 2, kernel 2: each output takes one tap per input channel
                # mostly shared over the 2x2 taps (+ DECONV_TAP_NOISE per tap): random taps would print a
                # 2x2 checkerboard on every mask, and masks of thousands of runs
                base = torch.randn(shape[:2], generator=g)[:, :, None, None]
                tap = torch.randn(shape, generator=g) * DECONV_TAP_NOISE
                v = (base + tap) * math.sqrt(2.0 / fan_in) / math.sqrt(1 + DECONV_TAP_NOISE ** 2)
                sd[name] = v.to(torch.float32)
                continue
            else:
                fan_in = int(np.prod(shape[1:]))
            gain = gains.get(name, 1.0)
            if name.endswith(".conv3.weight"):
                gain = RESIDUAL_GAIN
            elif ".fpn.layer_blocks." in name:
                gain = FPN_GAIN * FPN_LEVEL_GAIN[int(name.split(".")[3])]
            elif ".fpn." in name:
                gain = FPN_GAIN
            v = torch.randn(shape, generator=g) * (gain * math.sqrt(2.0 / fan_in))
        sd[name] = v.to(torch.float32)
    model.load_state_dict(sd)
    return model


def centre_class_logits(model):
    """Calibration: subtract from cls_score's bias each class's mean logit over the proposals of the first
    image, so that no class wins almost everywhere (fc7's ReLU outputs share a large common part)."""
    model.eval()
    with torch.no_grad():
        il, _ = model.transform([load_image(IMAGES[0])])
        feats = model.backbone(il.tensors)
        props, _ = model.rpn(il, feats)
        rh = model.roi_heads
        x = rh.box_head(rh.box_roi_pool(feats, props, il.image_sizes))
        logits = rh.box_predictor.cls_score(x)
        rh.box_predictor.cls_score.bias -= logits.mean(0)
    return model


def load_image(stem):
    img = Image.open(os.path.join(ROOT, "data", "demo", "images", stem + ".jpg")).convert("RGB")
    return TF.to_tensor(img)


def f9(values):
    """float32 values as plain JSON numbers with 9 significant digits (reads back to the same float32)."""
    return [float("%.9g" % v) for v in values]


def nested(t):
    a = t.detach().cpu().numpy()
    if a.dtype.kind == "f":
        return np.vectorize(lambda v: float("%.9g" % v), otypes=[object])(a).tolist() if a.size else a.tolist()
    return a.tolist()


def rle_runs(mask):
    """[start, length] runs of 1s in the row-major flattening of a bool [h, w] mask."""
    a = mask.reshape(-1).numpy().astype(np.int8)
    d = np.diff(np.concatenate([[0], a, [0]]))
    starts = np.where(d == 1)[0]
    ends = np.where(d == -1)[0]
    return [[int(s), int(e - s)] for s, e in zip(starts, ends)]


def gap_stats(scores):
    """Consecutive gaps of descending scores."""
    s = np.sort(scores.numpy().astype(np.float64))[::-1]
    if len(s) < 2:
        return {"n": int(len(s))}
    gaps = s[:-1] - s[1:]
    return {
        "n": int(len(s)),
        "max": float(s[0]), "min": float(s[-1]),
        "min_gap": float(gaps.min()), "median_gap": float(np.median(gaps)),
        "gaps_below_1e-4": int((gaps < 1e-4).sum()), "gaps_below_1e-5": int((gaps < 1e-5).sum()),
        "ties": int((gaps == 0).sum()),
    }


class Writer:
    def __init__(self, out):
        self.out = out
        self.files = OrderedDict()

    def f32(self, name, t, meaning):
        a = np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4"))
        a.tofile(os.path.join(self.out, name))
        self.files[name] = {"shape": list(a.shape), "meaning": meaning}
        return {"file": name, "shape": list(a.shape)}


def run_image(model, stem, w, full_dump):
    """One image through the model step by step (GeneralizedRCNN.forward), everything recorded."""
    img = load_image(stem)
    rec = OrderedDict(stem=stem, file=f"data/demo/images/{stem}.jpg")
    original_size = tuple(img.shape[-2:])
    rec["original_size"] = list(original_size)

    # transform
    il, _ = model.transform([img])
    h, w_ = il.image_sizes[0]
    rec["image_size"] = [int(h), int(w_)]
    rec["batched_shape"] = list(il.tensors.shape)
    rec["resize_scale_factor"] = float(torch.min(
        float(model.transform.min_size[-1]) / torch.tensor(original_size).min().to(torch.float32),
        float(model.transform.max_size) / torch.tensor(original_size).max().to(torch.float32)).item())
    if full_dump:
        rec["input"] = w.f32(f"{stem}.input.f32", il.tensors[0, :, :h, :w_],
                             "normalised resized image [3, H, W] (image_size; the batch pads it with zeros to batched_shape)")
    rec["input_sum"] = float(il.tensors.double().sum())

    # backbone + FPN
    feats = model.backbone(il.tensors)
    rec["fpn"] = OrderedDict()
    for k in LEVELS:
        f = feats[k]
        e = {"shape": list(f.shape[1:]), "sum": float(f.double().sum()), "abs_sum": float(f.double().abs().sum())}
        if full_dump:
            e.update(w.f32(f"{stem}.fpn.{k}.f32", f[0], f"FPN output '{k}' [C, H, W]"))
        rec["fpn"][k] = e

    # RPN, as RegionProposalNetwork.forward
    rpn = model.rpn
    fl = list(feats.values())
    objectness, deltas = rpn.head(fl)
    anchors = rpn.anchor_generator(il, fl)
    num_per_level = [int(o[0].shape[0] * o[0].shape[1] * o[0].shape[2]) for o in objectness]
    obj_c, del_c = concat_box_prediction_layers(objectness, deltas)
    proposals_all = rpn.box_coder.decode(del_c.detach(), anchors).view(1, -1, 4)
    boxes, scores = rpn.filter_proposals(proposals_all, obj_c, il.image_sizes, num_per_level)
    ref_boxes, _ = rpn(il, feats)
    assert torch.equal(ref_boxes[0], boxes[0])
    rec["anchors"] = OrderedDict(per_level=num_per_level, total=int(anchors[0].shape[0]),
                                 strides=[int(il.tensors.shape[-2] // f.shape[-2]) for f in fl],
                                 grid_sizes=[list(f.shape[-2:]) for f in fl])
    if full_dump:
        rec["anchors"].update(w.f32(f"{stem}.anchors.f32", anchors[0], "all anchors [N, 4] (x1, y1, x2, y2), levels concatenated, (y, x, anchor) order within a level"))
        rec["rpn_objectness"] = w.f32(f"{stem}.rpn.objectness.f32", obj_c.reshape(-1), "RPN objectness logits [N] in concat_box_prediction_layers order (same as anchors)")
        rec["rpn_deltas"] = w.f32(f"{stem}.rpn.deltas.f32", del_c, "RPN box deltas [N, 4] (dx, dy, dw, dh) in concat_box_prediction_layers order")
    rec["rpn_objectness_sum"] = float(obj_c.double().sum())
    rec["rpn_deltas_sum"] = float(del_c.double().sum())

    # what filter_proposals did, for locating differences
    ob = obj_c.detach().reshape(1, -1)
    cut = []
    n_pre = 0
    for lvl, o in enumerate(ob.split(num_per_level, 1)):
        k = min(rpn.pre_nms_top_n(), o.shape[1])
        srt = o[0].sort(descending=True)[0]
        n_pre += k
        cut.append({"level": lvl, "candidates": int(o.shape[1]), "kept": int(k),
                    "logit_at_cut": float(srt[k - 1]), "gap_at_cut": float(srt[k - 1] - srt[k]) if k < o.shape[1] else None})
    rec["rpn_pre_nms"] = OrderedDict(per_level=cut, total=n_pre,
                                     batched_nms="vanilla (per-level torchvision.ops.nms)" if n_pre * 4 > 4000 else "coordinate trick")
    # the full post-NMS list (before keep[:post_nms_top_n]) to see the margin at the cut
    saved = rpn._post_nms_top_n
    rpn._post_nms_top_n = {"training": 10 ** 9, "testing": 10 ** 9}
    _, all_scores = rpn.filter_proposals(proposals_all, obj_c, il.image_sizes, num_per_level)
    rpn._post_nms_top_n = saved
    P = rpn.post_nms_top_n()
    alls = all_scores[0]
    rec["rpn_post_nms"] = OrderedDict(after_nms=int(alls.shape[0]), kept=int(boxes[0].shape[0]),
                                      score_at_cut=float(alls[min(P, len(alls)) - 1]),
                                      gap_at_cut=float(alls[P - 1] - alls[P]) if len(alls) > P else None)
    rec["proposals"] = w.f32(f"{stem}.rpn.proposals.f32", boxes[0], "RPN proposals [P, 4] after NMS and top-n, resized-image coordinates, in torchvision's order (descending score)")
    rec["proposal_scores"] = w.f32(f"{stem}.rpn.scores.f32", scores[0], "sigmoid objectness of the proposals [P]")
    rec["proposal_score_gaps"] = gap_stats(scores[0])

    # box branch, as RoIHeads.forward
    rh = model.roi_heads
    bf = rh.box_roi_pool(feats, boxes, il.image_sizes)
    bf = rh.box_head(bf)
    class_logits, box_regression = rh.box_predictor(bf)
    pool = rh.box_roi_pool
    rec["box_roi_pool"] = OrderedDict(scales=pool.scales, k_min=pool.map_levels.k_min, k_max=pool.map_levels.k_max,
                                      proposals_per_level=torch.bincount(pool.map_levels(boxes), minlength=4).tolist())
    rec["class_logits"] = w.f32(f"{stem}.box.class_logits.f32", class_logits, "box-head class logits [P, 21] for the proposals")
    rec["box_regression"] = w.f32(f"{stem}.box.box_regression.f32", box_regression, "box-head deltas [P, 4 * 21] (per class dx, dy, dw, dh before the 10, 10, 5, 5 weights)")
    probs = torch.softmax(class_logits, -1)
    rec["top_class_prob"] = {"mean": float(probs.max(1)[0].mean()), "min": float(probs.max(1)[0].min()),
                             "foreground_top_mean": float(probs[:, 1:].max(1)[0].mean())}
    dboxes, dscores, dlabels = rh.postprocess_detections(class_logits, box_regression, boxes, il.image_sizes)
    saved = rh.detections_per_img
    rh.detections_per_img = 10 ** 9
    _, all_dscores, _ = rh.postprocess_detections(class_logits, box_regression, boxes, il.image_sizes)
    rh.detections_per_img = saved
    D = saved
    ad = all_dscores[0]
    n_cand = int(class_logits.shape[0] * (class_logits.shape[1] - 1))
    rec["box_nms"] = OrderedDict(candidates=n_cand, after_nms=int(ad.shape[0]), kept=int(dscores[0].shape[0]),
                                 batched_nms="vanilla (per-class torchvision.ops.nms)" if n_cand * 4 > 4000 else "coordinate trick",
                                 score_at_cut=float(ad[min(D, len(ad)) - 1]),
                                 gap_at_cut=float(ad[D - 1] - ad[D]) if len(ad) > D else None)

    # mask branch
    mf = rh.mask_roi_pool(feats, dboxes, il.image_sizes)
    pool = rh.mask_roi_pool
    rec["mask_roi_pool"] = OrderedDict(scales=pool.scales, k_min=pool.map_levels.k_min, k_max=pool.map_levels.k_max,
                                       detections_per_level=torch.bincount(pool.map_levels(dboxes), minlength=4).tolist())
    mf = rh.mask_head(mf)
    mask_logits = rh.mask_predictor(mf)
    mask_probs = maskrcnn_inference(mask_logits, dlabels)[0]
    result = [{"boxes": dboxes[0], "labels": dlabels[0], "scores": dscores[0], "masks": mask_probs}]
    ref, _ = rh(feats, boxes, il.image_sizes)
    for k in ("boxes", "labels", "scores", "masks"):
        assert torch.equal(ref[0][k], result[0][k]), k
    rec["detections_resized"] = OrderedDict(boxes=nested(dboxes[0]), labels=nested(dlabels[0]), scores=nested(dscores[0]))
    rec["mask_probs"] = w.f32(f"{stem}.det.mask_probs.f32", mask_probs, "mask probabilities [D, 1, 28, 28] of the detections' own labels (sigmoid)")
    rec["detection_score_gaps"] = gap_stats(dscores[0])

    # postprocess to the original image
    final = model.transform.postprocess([dict(r) for r in result], il.image_sizes, [original_size])[0]
    rec["detections"] = OrderedDict(
        boxes=nested(final["boxes"]), labels=nested(final["labels"]), scores=nested(final["scores"]),
        mask_runs=[rle_runs(m[0] > 0.5) for m in final["masks"]],
        mask_areas=[int((m[0] > 0.5).sum()) for m in final["masks"]],
        mask_values_exactly_half=int((final["masks"] == 0.5).sum()),
    )
    # the end-to-end call gives the same
    e2e = model([img])[0]
    for k in ("boxes", "labels", "scores", "masks"):
        assert torch.equal(e2e[k], final[k]), k
    return rec


def state_dict_keys(model):
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def dump(model, out, config, full_dump_images):
    os.makedirs(out, exist_ok=True)
    w = Writer(out)
    model.eval()
    recs = []
    with torch.no_grad():
        for i, stem in enumerate(IMAGES):
            t0 = time.time()
            recs.append(run_image(model, stem, w, full_dump=stem in full_dump_images))
            print(f"{stem}: {time.time() - t0:.1f} s", file=sys.stderr)
    manifest = OrderedDict(
        generator=f"tools/make-maskrcnn-fixtures.py, torch {torch.__version__}, torchvision {torchvision.__version__} (CPU, 1 thread, float32, eval, no_grad)",
        config=config,
        state_dict=state_dict_keys(model),
        images=recs,
        files=w.files,
    )
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=None, separators=(",", ":"))
    return manifest


def config_of(model, width):
    t, rpn, rh = model.transform, model.rpn, model.roi_heads
    return OrderedDict(
        width=width,
        num_classes=int(rh.box_predictor.cls_score.out_features),
        transform=OrderedDict(min_size=list(t.min_size), max_size=t.max_size, image_mean=t.image_mean, image_std=t.image_std, size_divisible=t.size_divisible),
        anchor_sizes=[list(s) for s in rpn.anchor_generator.sizes],
        aspect_ratios=[list(a) for a in rpn.anchor_generator.aspect_ratios],
        cell_anchors=[nested(c) for c in rpn.anchor_generator.cell_anchors],
        rpn=OrderedDict(pre_nms_top_n_test=rpn._pre_nms_top_n["testing"], post_nms_top_n_test=rpn._post_nms_top_n["testing"],
                        nms_thresh=rpn.nms_thresh, score_thresh=rpn.score_thresh, min_size=rpn.min_size,
                        box_coder_weights=list(rpn.box_coder.weights), bbox_xform_clip=rpn.box_coder.bbox_xform_clip),
        box_roi_pool=OrderedDict(featmap_names=rh.box_roi_pool.featmap_names, output_size=list(rh.box_roi_pool.output_size), sampling_ratio=rh.box_roi_pool.sampling_ratio, aligned=False, canonical_scale=224, canonical_level=4),
        mask_roi_pool=OrderedDict(featmap_names=rh.mask_roi_pool.featmap_names, output_size=list(rh.mask_roi_pool.output_size), sampling_ratio=rh.mask_roi_pool.sampling_ratio, aligned=False),
        roi_heads=OrderedDict(score_thresh=rh.score_thresh, nms_thresh=rh.nms_thresh, detections_per_img=rh.detections_per_img,
                              box_coder_weights=list(rh.box_coder.weights), bbox_xform_clip=rh.box_coder.bbox_xform_clip, remove_small_boxes=1e-2),
        frozen_bn_eps=1e-5,
        mask_threshold=0.5,
        seed=SEED,
        gains=OrderedDict(rpn_cls=RPN_CLS_GAIN, rpn_box=RPN_BOX_GAIN, cls=CLS_GAIN, box=BOX_GAIN, mask=MASK_GAIN,
                          residual=RESIDUAL_GAIN, deconv_tap_noise=DECONV_TAP_NOISE, fpn=FPN_GAIN, fpn_level=FPN_LEVEL_GAIN, mask_bias=MASK_BIAS),
    )


def check_keys(model, num_classes):
    ref = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes)
    ref_keys = [k for k in ref.state_dict() if not k.endswith("num_batches_tracked")]
    assert list(model.state_dict().keys()) == ref_keys, "state-dict keys differ from maskrcnn_resnet50_fpn"


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    model = centre_class_logits(init_weights(build_narrow(), SEED))
    check_keys(model, 21)
    torch.save(model.state_dict(), os.path.join(OUT, "narrow_maskrcnn.pth"))
    m = dump(model, OUT, config_of(model, "narrow"), full_dump_images=[IMAGES[0]])
    write_readme(m, OUT)
    report(m)
    total = 0
    for name in sorted(os.listdir(OUT)):
        size = os.path.getsize(os.path.join(OUT, name))
        total += size
        print(f"{name}: {size} bytes")
    print(f"total {total / 1e6:.2f} MB")

    if "--full" in sys.argv:
        t0 = time.time()
        full = centre_class_logits(init_weights(build_full(), SEED + 1))
        check_keys(full, 91)
        os.makedirs(FULL_OUT, exist_ok=True)
        torch.save(full.state_dict(), os.path.join(FULL_OUT, "maskrcnn_resnet50_fpn.pth"))
        m = dump(full, FULL_OUT, config_of(full, "full"), full_dump_images=[IMAGES[0]])
        report(m)
        print(f"full: {time.time() - t0:.1f} s")


README_HEAD = """# Mask R-CNN parity fixtures (issue 13, `torchvision` preset)

Made by `/usr/bin/python3 tools/make-maskrcnn-fixtures.py` with Debian's torch {torch} and torchvision
{tv} (CPU); the script writes every file here, this README included, and two runs give identical bytes. Tests read them; they never run Python.

## Model
`torchvision.models.detection.MaskRCNN` assembled from torchvision 0.14's own classes exactly as
`maskrcnn_resnet50_fpn` (v1) assembles it, only narrower (the state-dict keys are those of
`maskrcnn_resnet50_fpn(weights=None)` minus `num_batches_tracked`, same order; checked by the script):

- body: torchvision `ResNet` with `Bottleneck` [3, 4, 6, 3] (v1.5: stride in the 3x3 conv), **stem width 8**
  (layer1..layer4 output 32/64/128/256 channels), `norm_layer=FrozenBatchNorm2d` (eps 1e-5; computed as
  `scale = w * (rv + eps).rsqrt(); y = x * scale + (b - rm * scale)`), trainable layers 3 (irrelevant in eval);
- `BackboneWithFPN` over layer1..layer4 (returned as '0'..'3'), **FPN out_channels 16**, `LastLevelMaxPool`
  ('pool' = `max_pool2d(P5_output, kernel 1, stride 2)`, i.e. every other pixel of '3', ceil size);
  top-down: `interpolate(nearest, size=lateral size) + lateral`, then the 3x3 `layer_blocks`;
- RPN: `AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)`, `RPNHead(16, 3)`
  (3x3 conv + ReLU shared by all levels, 1x1 `cls_logits`, 1x1 `bbox_pred`), pre/post NMS top-n (test)
  1000/1000, NMS 0.7, score_thresh 0.0, min_size 1e-3, BoxCoder weights (1, 1, 1, 1);
- box branch: `MultiScaleRoIAlign(['0', '1', '2', '3'], 7, sampling_ratio=2)` (roi_align `aligned=False`),
  **`TwoMLPHead(16 * 7 * 7, 32)`**, **`FastRCNNPredictor(32, 21)`**, BoxCoder weights (10, 10, 5, 5),
  **box_score_thresh 0.0**, box_nms_thresh 0.5, detections_per_img 100;
- mask branch: `MultiScaleRoIAlign(['0', '1', '2', '3'], 14, sampling_ratio=2)`,
  **`MaskRCNNHeads(16, (16, 16, 16, 16), 1)`**, **`MaskRCNNPredictor(16, 16, 21)`**;
- transform: `GeneralizedRCNNTransform(min_size=320, max_size=512, image_mean=[0.485, 0.456, 0.406],
  image_std=[0.229, 0.224, 0.225])`, size_divisible 32;
- num_classes 21, every other `MaskRCNN` argument at its torchvision 0.14 default.

## Weights (`narrow_maskrcnn.pth`)
`torch.save(model.state_dict())`, zip format, 0.14 key names (`rpn.head.conv.0.0.*`,
`roi_heads.mask_head.{{0..3}}.0.*`, `backbone.fpn.inner_blocks.i.0.*`; torchvision's downloadable COCO files
use the older `rpn.head.conv.*` and `roi_heads.mask_head.mask_fcn{{1..4}}.*`, which its `_load_from_state_dict`
renames). Values from one seeded `torch.Generator` (seed {seed}) in sorted key order:
FrozenBatchNorm2d weight ~ U(0.5, 1.5), bias ~ N(0, 0.1), running_mean ~ N(0, 0.1), running_var ~ U(0.5, 2);
conv/linear weights ~ N(0, (gain * sqrt(2 / fan_in))^2), biases ~ N(0, 0.05^2), with gains
{gains} (Bottleneck conv3: `residual`; FPN convs: `fpn`, output convs x `fpn_level[i]`; RPN `cls_logits`
and `bbox_pred`: `rpn_cls`, `rpn_box`; `cls_score`, `bbox_pred`: `cls`, `box`; `mask_fcn_logits`: `mask`,
its bias + `mask_bias`; the mask head's ConvTranspose2d weight is a part shared by its 2x2 taps plus
`deconv_tap_noise` times that per tap). Finally `cls_score.bias` minus each class's mean logit over the
first image's proposals (so that no class wins everywhere). The gains spread the scores: see below.

## How it was run
Each image alone (a batch of 1, as `detect` runs), `model.eval()`, `torch.no_grad()`, 1 thread, float32,
image = `to_tensor(PIL.Image.open(jpg).convert("RGB"))`; the submodules are called step by step as
`GeneralizedRCNN.forward` does (`transform`, `backbone`, `rpn.head`, `rpn.anchor_generator`,
`concat_box_prediction_layers`, `box_coder.decode`, `rpn.filter_proposals`, `roi_heads.box_roi_pool` /
`box_head` / `box_predictor` / `postprocess_detections`, `mask_roi_pool` / `mask_head` / `mask_predictor` /
`maskrcnn_inference`, `transform.postprocess`) and every result is asserted equal (`torch.equal`) to
`model.rpn(...)`, `model.roi_heads(...)` and `model([image])`.

## Coordinates and layouts
- `.f32`: float32 little-endian, row-major, shapes in `manifest.json` (`files` and each image's entries).
- Boxes are (x1, y1, x2, y2) in pixels, no +1: width = x2 - x1. RPN anchors and proposals, box-head
  inputs and `detections_resized` are in **resized-image** coordinates (the image after
  `transform`, before padding: `image_size` = [H, W]); `detections` are in **original-image**
  coordinates (`original_size` = [h, w]).
- Anchor/objectness/delta order: levels '0', '1', '2', '3', 'pool' concatenated (`anchors.per_level`);
  within a level index = (y * grid_W + x) * 3 + a, a over aspect ratios (0.5, 1, 2) (ratio = h / w).
- `mask_runs`: per detection, `[start, length]` runs of pixels with pasted mask probability `> 0.5`, over the
  row-major flattening (index = y * w + x) of the original h x w image; `mask_areas` their sums.
- Floats in `manifest.json` are float32 values printed with 9 significant digits (they read back exactly).

## Files
| file | shape | meaning |
|---|---|---|
| `narrow_maskrcnn.pth` | | the state dict (keys below) |
| `manifest.json` | | config, per-image sizes, shapes, sums, small arrays, cut margins, score-gap statistics |
"""

README_MANIFEST = """
## manifest.json
- `config`: the configuration above, including `cell_anchors` (rounded, as torchvision keeps them) and the gains.
- `state_dict`: [key, shape] in state-dict order.
- `images[i]`: `stem`, `original_size` [h, w], `resize_scale_factor` (the float32 scale torchvision passes to
  `interpolate`), `image_size` [H, W], `batched_shape` [1, 3, H32, W32] (padded with zeros to a multiple of 32
  after normalising), `input_sum`; `fpn[level]` shape [C, H, W], `sum`, `abs_sum` (and `file` for image 1);
  `anchors`: `per_level`, `total`, `strides`, `grid_sizes` (and `file`); `rpn_objectness_sum`,
  `rpn_deltas_sum`; `rpn_pre_nms.per_level`: candidates, kept (min(1000, n)), the logit of the last kept and
  its gap to the first dropped; `rpn_post_nms`: boxes after NMS, kept (1000), score at the cut and the gap to
  the next; `proposals`, `proposal_scores` (files); `box_roi_pool` / `mask_roi_pool`: inferred `scales`,
  `k_min`, `k_max` and how many boxes went to each of '0'..'3'; `class_logits`, `box_regression`
  (files); `top_class_prob`; `box_nms`: candidates (P x 20), after per-class NMS, kept, score at the cut,
  gap to the next; `detections_resized` {boxes, labels, scores} (before `transform.postprocess`);
  `mask_probs` (file); `detections` {boxes, labels, scores, mask_runs, mask_areas,
  mask_values_exactly_half}; `proposal_score_gaps`, `detection_score_gaps`: consecutive gaps of the sorted
  scores (min, median, counts below 1e-4 / 1e-5, exact ties).
- `files`: every `.f32` with shape and meaning.

## torchvision 0.14 behaviours a re-implementation must match
- FrozenBatchNorm2d eps is 1e-5 here; note that `maskrcnn_resnet50_fpn(weights=COCO_V1)` calls
  `overwrite_eps(model, 0.0)`, so torchvision's own COCO checkpoint runs with eps 0. Without any weights
  `maskrcnn_resnet50_fpn` would use `nn.BatchNorm2d` (keys + `num_batches_tracked`); this fixture uses
  FrozenBatchNorm2d as the pretrained builders do.
- Normalise first, then resize: `interpolate(bilinear, align_corners=False, antialias off,
  scale_factor=s, recompute_scale_factor=True)` with `s = min(min_size / min(h, w), max_size / max(h, w))`
  computed in **float32** tensors (`.item()`), output size `floor(in * s)` in double; the kernel then uses
  in/out as its scale. So the short side can come out one pixel short: at min_size 800 a 375-px side gives
  799 (float32 800/375 < 2.1333...), at 320 it gives 320.
- Batch padding with zeros (in normalised space) on the right/bottom to multiples of 32; anchors use the
  **padded** size (stride = padded // grid, integers), clipping uses the **unpadded** `image_size`.
- Cell anchors `round([-w, -h, w, h] / 2)` with w = size / sqrt(r), h = size * sqrt(r) (float32, round half to
  even); anchor = cell anchor + (x * stride, y * stride), no half-pixel offset.
- RPN: per level `topk` (sorted) of the raw **logits**, k = min(1000, n); then `sigmoid`; clip to the unpadded
  image (x to [0, W], y to [0, H]);
  drop boxes with a side `< 1e-3`; keep score `>= 0.0` (all); NMS per level at IoU 0.7. With more than
  1000 boxes on the CPU (always here: 3525 candidates) `batched_nms` is `_batched_nms_vanilla`: plain
  `nms` per level, then all kept indices sorted by the sigmoid score descending (`torch.sort`, not
  guaranteed stable on ties), first 1000. The proposals' `scores` are those sigmoid probabilities.
- `torchvision.ops.nms` (CPU kernel): areas (x2 - x1) * (y2 - y1), suppresses when IoU `>` threshold (exactly
  equal is kept); equal scores came out in index order when tried.
- BoxCoder.decode: widths = x2 - x1, ctr = x1 + 0.5 * w, dx / wx, ..., dw and dh clamped at `log(1000 / 16)`
  (4.135166556742356) before exp; x1 = ctr - 0.5 * pred_w etc.
- MultiScaleRoIAlign: scales inferred **once, on the first call** (cached in the module) from the height of
  each feature map over the largest unpadded image height: 2^round(log2(H_feat / H_img)); level =
  clamp(floor(4 + log2(sqrt(area) / 224) + 1e-6), k_min = 2, k_max = 5) (area (x2-x1)(y2-y1)); roi_align
  `aligned=False`, sampling_ratio 2; 'pool' is never pooled. At 320 px no box reaches level 5 ('3').
- Box head: RoI features flattened in (C, 7, 7) order, fc6 + ReLU, fc7 + ReLU.
- postprocess_detections: softmax; per-class decode with weights (10, 10, 5, 5); clip; drop background;
  candidates flattened in (proposal, class) order; keep score `> 0.0` (strict); drop boxes with a side
  `< 1e-2`; per-class `_batched_nms_vanilla` at 0.5 (P x 20 candidates > 1000); sort descending; first 100.
- Mask: RoIAlign 14 x 14 on the detection boxes (resized coordinates), 4 x (3x3 conv + ReLU),
  ConvTranspose2d(2, stride 2) + ReLU, 1x1 conv, sigmoid, the channel of the detection's label.
- postprocess: boxes times float32 `orig / resized` per axis; `paste_masks_in_image`: pad the 28 x 28 mask by 1
  (30 x 30), expand the box about its centre by 30 / 28 (float32), cast to int64 (**truncation toward zero**),
  w = max(int(x2 - x1 + 1), 1), h likewise, bilinear resize (align_corners=False) of the 30 x 30 mask to (h, w),
  paste rows y1..y2 and columns x1..x2 inclusive, clipped to the image.
"""


def write_readme(m, out):
    c = m["config"]
    lines = [README_HEAD.format(torch=torch.__version__, tv=torchvision.__version__, seed=c["seed"], gains=json.dumps(c["gains"]))]
    for name, f in m["files"].items():
        lines.append(f"| `{name}` | {f['shape']} | {f['meaning']} |\n")
    lines.append(README_MANIFEST)
    lines.append("\n## Images and score separation\n")
    lines.append("| image | original [h, w] | resized [H, W] | batched | proposals per RoI level | detections per RoI level | labels (count) |\n|---|---|---|---|---|---|---|\n")
    for r in m["images"]:
        labels = np.bincount(r["detections"]["labels"], minlength=21)
        lab = ", ".join(f"{i}: {n}" for i, n in enumerate(labels) if n)
        lines.append(f"| {r['stem']} | {r['original_size']} | {r['image_size']} | {r['batched_shape']} | "
                     f"{r['box_roi_pool']['proposals_per_level']} | {r['mask_roi_pool']['detections_per_level']} | {lab} |\n")
    lines.append("\nConsecutive gaps of the sorted scores (P = RPN proposals, D = the top-100 detections) and margins at the cuts:\n\n")
    lines.append("| image | scores | n | range | min gap | median gap | gaps < 1e-4 | gaps < 1e-5 | ties | margin at the cut |\n|---|---|---|---|---|---|---|---|---|---|\n")
    for r in m["images"]:
        for key, cut in (("proposal_score_gaps", r["rpn_post_nms"]), ("detection_score_gaps", r["box_nms"])):
            g = r[key]
            lines.append(f"| {r['stem']} | {'P' if key.startswith('proposal') else 'D'} | {g['n']} | {g['min']:.4f}..{g['max']:.4f} | "
                         f"{g['min_gap']:.2e} | {g['median_gap']:.2e} | {g['gaps_below_1e-4']} | {g['gaps_below_1e-5']} | {g['ties']} | {cut['gap_at_cut']:.2e} |\n")
        pre = ", ".join(f"{e['gap_at_cut']:.1e}" for e in r["rpn_pre_nms"]["per_level"] if e["gap_at_cut"] is not None)
        lines.append(f"| {r['stem']} | pre-NMS logit margins at the per-level top-1000 cuts | | | | | | | | {pre} |\n")
    lines.append(f"\nTop class probability over the proposals (mean): "
                 + ", ".join(f"{r['stem']} {r['top_class_prob']['mean']:.3f}" for r in m["images"]) + " (1/21 = 0.048).\n")
    lines.append("\n## State-dict keys (and shapes)\n\n```\n")
    for k, shape in m["state_dict"]:
        lines.append(f"{k} {shape}\n")
    lines.append("```\n")
    lines.append("""
## Real width (not committed)
`/usr/bin/python3 tools/make-maskrcnn-fixtures.py --full` also writes, into `.cache/fixtures/maskrcnn-full/`
(git-ignored), the same dump for the real-width model (`resnet50(norm_layer=FrozenBatchNorm2d)` through
`_resnet_fpn_extractor(body, 3)`, `MaskRCNN(num_classes=91, box_score_thresh=0.0)`: min_size 800,
max_size 1333, heads 256/1024/256, the same weight rules with seed + 1): `maskrcnn_resnet50_fpn.pth`,
`manifest.json` and the same `.f32` files (about 1.5 minutes on one thread).
""")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("".join(lines))


def report(m):
    for r in m["images"]:
        print(r["stem"], r["original_size"], r["image_size"], r["batched_shape"])
        print("  fpn", {k: v["shape"] for k, v in r["fpn"].items()})
        print("  anchors", r["anchors"]["per_level"], "pre-nms", json.dumps(r["rpn_pre_nms"]))
        print("  rpn post", json.dumps(r["rpn_post_nms"]), "gaps", json.dumps(r["proposal_score_gaps"]))
        print("  top class prob", r["top_class_prob"], "box nms", json.dumps(r["box_nms"]))
        print("  det gaps", json.dumps(r["detection_score_gaps"]))
        print("  labels", r["detections"]["labels"][:20], "areas", r["detections"]["mask_areas"][:20])


if __name__ == "__main__":
    main()
