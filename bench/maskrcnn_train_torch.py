#!/usr/bin/python3
"""One Mask R-CNN training step with torchvision 0.14 on PyTorch CPU, for bench/maskrcnn_train.ts.

usage: bench/maskrcnn_train_torch.py CHECKPOINT ANNOTATIONS.json IMAGES_DIR RUNS THREADS MIN_SIZE MAX_SIZE BATCH...
CHECKPOINT: maskrcnn_resnet50_fpn(num_classes=21) state dict (bench/maskrcnn_torch.py writes it). The step is
model(images, targets) in train mode (trainable_layers 3, torchvision's defaults), sum of the losses,
backward, SGD(momentum 0.9, weight decay 1e-4).step(). GT masks from the COCO polygons (PIL ImageDraw).
Prints one JSON line: {batch: {median_s, runs}}.
"""
import json, sys, time, resource
import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.transforms.functional import to_tensor

ckpt, ann, imdir, runs, threads, min_size, max_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
batches = [int(b) for b in sys.argv[8:]]
torch.set_num_threads(threads)
torch.manual_seed(0)
model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=21, min_size=min_size, max_size=max_size, trainable_backbone_layers=3)
model.load_state_dict(torch.load(ckpt))
model.train()
coco = json.load(open(ann))
samples = []
for im in coco["images"]:
    anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
    masks, boxes, labels = [], [], []
    for a in anns:
        m = Image.new("L", (im["width"], im["height"]), 0)
        for poly in a["segmentation"]:
            ImageDraw.Draw(m).polygon([(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)], fill=1, outline=1)
        x, y, w, h = a["bbox"]
        masks.append(np.array(m, dtype=np.uint8)); boxes.append([x, y, x + w, y + h]); labels.append(a["category_id"] % 20 + 1)
    samples.append((to_tensor(Image.open(f"{imdir}/{im['file_name']}").convert("RGB")),
                    {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels), "masks": torch.from_numpy(np.stack(masks))}))
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9, weight_decay=1e-4)
out = {}
for b in batches:
    imgs, tgts = [s[0] for s in samples[:b]], [s[1] for s in samples[:b]]
    def step():
        opt.zero_grad()
        loss = sum(model(imgs, tgts).values())
        loss.backward()
        opt.step()
    step()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    out[str(b)] = {"median_s": times[len(times) // 2], "runs": runs}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps(out))
