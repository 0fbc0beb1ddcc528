#!/usr/bin/python3
"""Mask R-CNN training-loss parity fixtures (issue 14, `torchvision` preset), from torchvision's own code.

Run with Debian's python3 (torch 1.13 + torchvision 0.14): /usr/bin/python3 tools/make-maskrcnn-train-fixtures.py

Model: the narrow maskrcnn_resnet50_fpn of tools/make-maskrcnn-fixtures.py (same builder, imported from that
script; its committed seeded state dict test/fixtures/maskrcnn/narrow_maskrcnn.pth is loaded, no new weights
are written), but with min_size 160 / max_size 256 so that a training step is small. Everything else is
torchvision 0.14's default for maskrcnn_resnet50_fpn in train mode: RPN 2000/2000 proposals pre/post NMS,
anchor Matcher 0.7/0.3 with low-quality matches, 256 anchors per image half positive, GT boxes appended to
the proposals, ROI Matcher 0.5, 512 ROIs per image 25 % positive, box weights (1,1,1,1) / (10,10,5,5),
smooth-L1 beta 1/9, mask targets = roi_align(gt mask, proposal, 28x28, scale 1, adaptive sampling, aligned
False). Trainable: layer2..layer4 (trainable_layers 3), FPN, RPN, heads; FrozenBatchNorm buffers never train.

Input: a batch of two demo images (data/demo/images/000000000086.jpg 400x500, 000000000321.jpg 500x375) with
their three COCO instances each (data/demo/instances.json). GT masks are rasterised from the polygons with
PIL ImageDraw (outline included) and stored here as uncompressed COCO RLE at the original size, GT boxes are
the COCO bbox [x, y, w, h] -> [x1, y1, x2, y2], labels = category_id % 20 + 1 (21-class model).
GeneralizedRCNNTransform resizes images, boxes and masks itself (torchvision's target transform).

The random sampling: BalancedPositiveNegativeSampler.__call__ is wrapped; it runs torchvision's own code
(torch.randperm under torch.manual_seed(SEED)) and the wrapper records, per call and image, the indices
it chose (positives, negatives) into the manifest. The TypeScript test gives those indices to its
sampler, so the same anchors and proposals are sampled.

Recorded: the five losses (float64 of torchvision's float32), the gradients of a few parameters after
backward() of their sum (torch layout, .f32), each image's RPN proposals in training mode, the sampled
indices. One thread, float32; two runs write identical bytes.
"""
import importlib.util
import json
import os
from collections import OrderedDict

import numpy as np
import torch
import torchvision
from PIL import Image, ImageDraw
from torchvision.models.detection import _utils as det_utils

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "test", "fixtures", "maskrcnn-train")
WEIGHTS = os.path.join(ROOT, "test", "fixtures", "maskrcnn", "narrow_maskrcnn.pth")
IMAGES = ["000000000086", "000000000321"]
SEED = 20261214
MIN_SIZE, MAX_SIZE = 160, 256
GRADIENTS = [
    "backbone.body.layer4.2.conv3.weight",
    "backbone.body.layer2.0.conv1.weight",
    "backbone.fpn.layer_blocks.0.0.weight",
    "rpn.head.conv.0.0.weight",
    "rpn.head.cls_logits.weight",
    "rpn.head.bbox_pred.weight",
    "roi_heads.box_head.fc6.weight",
    "roi_heads.box_predictor.cls_score.weight",
    "roi_heads.box_predictor.bbox_pred.weight",
    "roi_heads.box_predictor.bbox_pred.bias",
    "roi_heads.mask_head.0.0.weight",
    "roi_heads.mask_predictor.conv5_mask.weight",
    "roi_heads.mask_predictor.mask_fcn_logits.weight",
]


def eval_fixtures_module():
    spec = importlib.util.spec_from_file_location("make_maskrcnn_fixtures", os.path.join(ROOT, "tools", "make-maskrcnn-fixtures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rle_columns(mask):
    """Uncompressed COCO RLE counts (column-major runs, starting with zeros) of a bool [h, w] array."""
    a = mask.T.reshape(-1).astype(np.int8)
    counts, prev, run = [], 0, 0
    for v in a:
        if v != prev:
            counts.append(run)
            run, prev = 0, v
        run += 1
    counts.append(run)
    return counts


def targets_of(stem, coco):
    img_rec = next(i for i in coco["images"] if i["file_name"] == stem + ".jpg")
    anns = [a for a in coco["annotations"] if a["image_id"] == img_rec["id"]]
    h, w = img_rec["height"], img_rec["width"]
    masks, boxes, labels, out = [], [], [], []
    for a in anns:
        im = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(im)
        for poly in a["segmentation"]:
            d.polygon([(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)], fill=1, outline=1)
        m = np.array(im, dtype=bool)
        x, y, bw, bh = a["bbox"]
        box = [x, y, x + bw, y + bh]
        label = a["category_id"] % 20 + 1
        masks.append(m)
        boxes.append(box)
        labels.append(label)
        out.append({"bbox_xyxy": [float(v) for v in box], "label": label,
                    "mask": {"size": [h, w], "counts": rle_columns(m)}})
    t = {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.int64),
         "masks": torch.from_numpy(np.stack(masks).astype(np.uint8))}
    return t, out, [h, w]


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    fx = eval_fixtures_module()
    fx.NARROW_KW.update(min_size=MIN_SIZE, max_size=MAX_SIZE)
    model = fx.build_narrow()
    model.load_state_dict(torch.load(WEIGHTS))
    model.train()

    coco = json.load(open(os.path.join(ROOT, "data", "demo", "instances.json")))
    images, targets, gt = [], [], []
    for stem in IMAGES:
        images.append(fx.load_image(stem))
        t, rec, size = targets_of(stem, coco)
        targets.append(t)
        gt.append({"stem": stem, "file": f"data/demo/images/{stem}.jpg", "size": size, "instances": rec})

    # record what the sampler chose (torchvision's own randperm does the choosing)
    calls = []
    original = det_utils.BalancedPositiveNegativeSampler.__call__

    def recording(self, matched_idxs):
        pos, neg = original(self, matched_idxs)
        calls.append({
            "batch_size_per_image": self.batch_size_per_image,
            "positive_fraction": self.positive_fraction,
            "images": [{"labels_numel": int(l.numel()),
                        "positive": torch.where(p)[0].tolist(), "negative": torch.where(n)[0].tolist()}
                       for l, p, n in zip(matched_idxs, pos, neg)],
        })
        return pos, neg

    det_utils.BalancedPositiveNegativeSampler.__call__ = recording

    # the RPN's training proposals, per image (what the ROI heads sample from, before the GT is appended)
    proposals_seen = []
    rpn_filter = model.rpn.filter_proposals

    def filter_recording(*args, **kw):
        boxes, scores = rpn_filter(*args, **kw)
        proposals_seen.extend(b.detach().clone() for b in boxes)
        return boxes, scores

    model.rpn.filter_proposals = filter_recording

    torch.manual_seed(SEED)
    losses = model(images, targets)
    total = sum(losses.values())
    total.backward()
    det_utils.BalancedPositiveNegativeSampler.__call__ = original

    params = dict(model.named_parameters())
    manifest = OrderedDict()
    manifest["torch"] = torch.__version__
    manifest["torchvision"] = torchvision.__version__
    manifest["weights"] = "test/fixtures/maskrcnn/narrow_maskrcnn.pth"
    manifest["min_size"], manifest["max_size"] = MIN_SIZE, MAX_SIZE
    manifest["seed"] = SEED
    manifest["losses"] = {k: float(v) for k, v in losses.items()}
    manifest["images"] = gt
    manifest["sampler_calls"] = calls
    manifest["proposals"] = []
    for i, b in enumerate(proposals_seen):
        name = f"{IMAGES[i]}.proposals.f32"
        b.numpy().astype("<f4").tofile(os.path.join(OUT, name))
        manifest["proposals"].append({"file": name, "shape": list(b.shape)})
    manifest["gradients"] = OrderedDict()
    for name in GRADIENTS:
        g = params[name].grad
        fname = f"grad.{name}.f32"
        g.numpy().astype("<f4").tofile(os.path.join(OUT, fname))
        manifest["gradients"][name] = {"file": fname, "shape": list(g.shape), "abs_max": float(g.abs().max())}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(json.dumps(manifest["losses"], indent=1))
    for c in calls:
        print(c["batch_size_per_image"], [(len(i["positive"]), len(i["negative"])) for i in c["images"]])
    print("proposals", [list(b.shape) for b in proposals_seen])
    total_bytes = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"total {total_bytes / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
