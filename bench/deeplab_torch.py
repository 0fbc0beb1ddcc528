"""PyTorch reference for bench/deeplab.ts: torchvision's deeplabv3_resnet50 (the reference's layout) on the CPU.

usage: /usr/bin/python3 bench/deeplab_torch.py THREADS TRAIN_SIZE TRAIN_BATCH INFER_SIZE ; prints one JSON object
{"train": {"secondsPerStep", "steps"}, "inference": {"secondsPerImage", "runs"}}.
Training step as the reference trains (multi_gpu.py): conv1..layer2 frozen in eval mode, the rest in
train mode (Dropout 0.5), OHEM cross-entropy (0.2, ignore 255), SGD lr 0.002 / momentum 0.9 / weight
decay 1e-4 over model.parameters(). Inference: eval mode, no_grad, batch 1. Random weights, random labels.
"""
import json
import os
import statistics
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from deeplab_reference import freeze_front, ohem  # noqa: E402


def main():
    threads, size, batch, infer = (int(a) for a in sys.argv[1:5])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 21, (batch, size, size))
    times = []
    for i in range(3):
        model.train()
        freeze_front(model)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = ohem(model(x)["out"], y)
        loss.backward()
        opt.step()
        if i > 0:
            times.append(time.perf_counter() - t0)
    model.eval()
    xi = torch.randn(1, 3, infer, infer)
    runs = []
    with torch.no_grad():
        for i in range(3):
            t0 = time.perf_counter()
            model(xi)["out"].argmax(1)
            if i > 0:
                runs.append(time.perf_counter() - t0)
    print(json.dumps({"train": {"secondsPerStep": statistics.median(times), "steps": times},
                      "inference": {"secondsPerImage": statistics.median(runs), "runs": runs}}))


if __name__ == "__main__":
    main()
