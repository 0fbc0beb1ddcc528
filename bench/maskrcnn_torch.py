#!/usr/bin/python3
"""Mask R-CNN inference timing with torchvision 0.14 on PyTorch CPU, for bench/maskrcnn.ts.

usage: bench/maskrcnn_torch.py CHECKPOINT IMAGE RUNS THREADS MIN_SIZE...
Writes CHECKPOINT first when it does not exist: maskrcnn_resnet50_fpn(weights=None, num_classes=21)
with seeded weights (the same file then loads in TypeScript). Every timing runs the whole model(image)
call (transform, backbone, RPN, heads, paste) in eval mode with box_score_thresh 0 and 100 detections,
so both implementations do the same work. Prints one JSON line: {min_size: {median_s, runs, detections}}.
"""
import json, os, sys, time, resource
import torch
import torchvision
from PIL import Image
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.transforms.functional import to_tensor

ckpt, image, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sizes = [int(s) for s in sys.argv[5:]]
torch.set_num_threads(threads)
torch.manual_seed(0)
model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=21, box_score_thresh=0.0, box_detections_per_img=100)
if os.path.exists(ckpt):
    model.load_state_dict(torch.load(ckpt))
else:
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif name.endswith("running_mean") or (name.endswith(".bias") and "bn" in name):
                t.normal_(0, 0.1)
    os.makedirs(os.path.dirname(os.path.abspath(ckpt)), exist_ok=True)
    torch.save({k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}, ckpt)
model.eval()
img = to_tensor(Image.open(image).convert("RGB"))
out = {}
with torch.no_grad():
    for s in sizes:
        model.transform.min_size = (s,)
        model([img])  # warm-up
        times, n = [], 0
        for _ in range(runs):
            t = time.perf_counter()
            r = model([img])[0]
            times.append(time.perf_counter() - t)
            n = int(r["scores"].numel())
        times.sort()
        out[str(s)] = {"median_s": times[len(times) // 2], "runs": runs, "detections": n}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
out["torch"] = torch.__version__
print(json.dumps(out))
