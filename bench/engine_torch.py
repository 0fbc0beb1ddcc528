"""PyTorch reference for bench/engine.ts: the same three SGD training steps on the CPU, at 1 and 2 threads.

usage: /usr/bin/python3 bench/engine_torch.py CASE... ; prints one JSON object
{"<case>/<threads>": {"threads", "batch", "secondsPerStep", "secondsPerImage", "steps"}}.
Models mirror src/engine/models (random weights; only the speed matters):
  resnet50_layer1_2_64   torchvision ResNet-50 layer1+layer2 on [1, 64, 64, 64], loss mean(y²)
  deeplabv3_r50_os8_256  ResNet-50 OS8 (conv1..layer2 frozen: eval BN, no grad), ASPP 12/24/36 with
                         conv + BN in the pooling branch (that BN in eval mode at batch 1, as ours),
                         3×3 head, bilinear upsampling, CE; batch 1
  vit_s16_224            ViT-S/16, 12 blocks, class-token head, CE; batch 2
"""
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

STEPS = {"resnet50_layer1_2_64": 5, "deeplabv3_r50_os8_256": 3, "vit_s16_224": 3}
LR = 0.01


def conv_bn_relu(cin, cout, k, dilation=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, padding=dilation * (k - 1) // 2, dilation=dilation, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DeepLabHead(nn.Module):
    def __init__(self, num_classes, c=256):
        super().__init__()
        self.conv1x1 = conv_bn_relu(2048, c, 1)
        self.atrous = nn.ModuleList([conv_bn_relu(2048, c, 3, r) for r in (12, 24, 36)])
        self.pool = conv_bn_relu(2048, c, 1)
        self.project = conv_bn_relu(5 * c, c, 1)
        self.head = conv_bn_relu(c, c, 3)
        self.classifier = nn.Conv2d(c, num_classes, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        if x.shape[0] == 1:
            self.pool.eval()   # BN over one value per channel: running statistics (src/engine/models/deeplab.ts)
        pooled = self.pool(x.mean((2, 3), keepdim=True)).expand(-1, -1, h, w)
        y = torch.cat([self.conv1x1(x)] + [a(x) for a in self.atrous] + [pooled], 1)
        return self.classifier(self.head(self.project(y)))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, size=224, patch=16, d=384, depth=12, heads=6, classes=1000):
        super().__init__()
        self.patch = nn.Conv2d(3, d, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 1 + (size // patch) ** 2, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(d, eps=1e-6), nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


def setup(case):
    torch.manual_seed(0)
    if case == "resnet50_layer1_2_64":
        r = torchvision.models.resnet50()
        model = nn.Sequential(r.layer1, r.layer2).train()
        x = torch.randn(1, 64, 64, 64)
        return 1, list(model.parameters()), lambda: model(x).pow(2).mean()
    if case == "deeplabv3_r50_os8_256":
        r = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True])
        front = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2).eval()
        for p in front.parameters():
            p.requires_grad_(False)
        trunk = nn.Sequential(r.layer3, r.layer4).train()
        head = DeepLabHead(21).train()
        x = torch.randn(1, 3, 256, 256)
        labels = torch.randint(0, 21, (1, 256, 256))

        def loss():
            with torch.no_grad():
                f = front(x)
            logits = F.interpolate(head(trunk(f)), size=(256, 256), mode="bilinear", align_corners=False)
            return F.cross_entropy(logits, labels)

        return 1, list(trunk.parameters()) + list(head.parameters()), loss
    if case == "vit_s16_224":
        model = ViT().train()
        x = torch.randn(2, 3, 224, 224)
        labels = torch.tensor([3, 7])
        return 2, list(model.parameters()), lambda: F.cross_entropy(model(x), labels)
    raise SystemExit(f"unknown case {case}")


def run(case, threads):
    torch.set_num_threads(threads)
    batch, params, loss_fn = setup(case)
    opt = torch.optim.SGD(params, lr=LR)
    times = []
    for i in range(STEPS[case] + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if i > 0:
            times.append(dt)
    per_step = statistics.median(times)
    return {"threads": threads, "batch": batch, "secondsPerStep": round(per_step, 3),
            "secondsPerImage": round(per_step / batch, 3), "steps": [round(t, 3) for t in times]}


def main():
    cases = sys.argv[1:] or list(STEPS)
    out = {}
    for case in cases:
        for threads in (1, 2):
            out[f"{case}/{threads}"] = run(case, threads)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
