#!/usr/bin/python3
"""Reference stage-ii CLS embeddings (METHOD.md §3.1) of demo-data box crops, for
test/cluster-cls-parity.test.ts.

Run with Debian's python3 (python3-torch, python3-pil):  /usr/bin/python3 tools/make-cls-fixtures.py

The DINO VisionTransformer forward (MaskDistill models/models_vit.py: patch-embedding conv, CLS token,
position embedding interpolated as DINO's interpolate_pos_encoding, pre-norm blocks with qkv bias,
LayerNorm eps 1e-6, exact GELU, final norm) is written out below in plain torch, float32 on the CPU,
one crop at a time as the reference's utils/cluster.py runs it. It is first checked against the 12
`cls` vectors of test/fixtures/reference-vit/manifest.json (relative L2 ||a - b||2 / ||b||2 <= 1e-5,
printed); only then are the demo crops embedded.

Crops: the ground-truth boxes (non-crowd, w >= 1 and h >= 1) of the first images of
data/demo/instances.json, in file order, whole images at a time until there are at least --count of
them. Each crop is cut the way cluster.py does: PIL RGB at original resolution -> ToTensor ->
Normalize(ImageNet) -> t[:, round(y):round(y+h), round(x):round(x+w)] (Python round, the slice clips at
the image) -> zero pad bottom/right to a multiple of 8. No resize.

Writes test/fixtures/reference-vit/cls_demo.json: per crop the image, annotation id, box, crop size and
the 384 CLS values (float32, written with 8 significant digits).
"""
import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, "test", "fixtures", "reference-vit")
DEMO = os.path.join(ROOT, "data", "demo")
COCO_MINI_IMAGES = os.path.join(ROOT, "data", "coco-mini", "images")
OUT = os.path.join(REF, "cls_demo.json")

PATCH, DIM, HEADS, EPS = 8, 384, 6, 1e-6
MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32).view(3, 1, 1)


# ---------------------------------------------------------------------------------------------
# DINO ViT forward, CLS token after the final norm

def interpolate_pos_encoding(pos_embed, npatch, h, w):
    """DINO's interpolate_pos_encoding for an input of h x w pixels (B, nc, w, h = x.shape in DINO's
    names, so its 'w0' is the number of patch rows)."""
    n = pos_embed.shape[1] - 1
    if npatch == n and w == h:
        return pos_embed
    dim = pos_embed.shape[-1]
    class_pos, patch_pos = pos_embed[:, 0], pos_embed[:, 1:]
    r0, c0 = h // PATCH, w // PATCH
    r0, c0 = r0 + 0.1, c0 + 0.1  # DINO: avoid floating point error in the interpolation
    g = int(math.sqrt(n))
    patch_pos = F.interpolate(
        patch_pos.reshape(1, g, g, dim).permute(0, 3, 1, 2),
        scale_factor=(r0 / math.sqrt(n), c0 / math.sqrt(n)),
        mode="bicubic",
        align_corners=False,
    )
    assert int(r0) == patch_pos.shape[-2] and int(c0) == patch_pos.shape[-1]
    patch_pos = patch_pos.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_pos.unsqueeze(0), patch_pos), dim=1)


def block(x, sd, i):
    p = f"blocks.{i}."
    B, N, C = x.shape
    hd = C // HEADS
    y = F.layer_norm(x, (C,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], EPS)
    qkv = F.linear(y, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
    qkv = qkv.reshape(B, N, 3, HEADS, hd).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = (q @ k.transpose(-2, -1)) * (hd ** -0.5)
    attn = attn.softmax(dim=-1)
    y = (attn @ v).transpose(1, 2).reshape(B, N, C)
    x = x + F.linear(y, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
    y = F.layer_norm(x, (C,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], EPS)
    y = F.linear(F.gelu(F.linear(y, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])), sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
    return x + y


def vit_cls(x, sd, depth):
    """x: [B, 3, H, W] normalised and padded; returns [B, dim]."""
    B, _, h, w = x.shape
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=PATCH)
    t = t.flatten(2).transpose(1, 2)
    t = torch.cat((sd["cls_token"].expand(B, -1, -1), t), dim=1)
    t = t + interpolate_pos_encoding(sd["pos_embed"], t.shape[1] - 1, h, w)
    for i in range(depth):
        t = block(t, sd, i)
    t = F.layer_norm(t, (t.shape[-1],), sd["norm.weight"], sd["norm.bias"], EPS)
    return t[:, 0]


# ---------------------------------------------------------------------------------------------
# cluster.py's crop

def load_normalized(path):
    img = Image.open(path).convert("RGB")
    t = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
    return (t - MEAN) / STD


def crop(t, bbox):
    x, y, w, h = bbox
    c = t[:, round(y):round(y + h), round(x):round(x + w)]
    ch, cw = c.shape[1:]
    if ch == 0 or cw == 0:
        raise ValueError(f"box {bbox} selects no pixels")
    ph, pw = -ch % PATCH, -cw % PATCH
    return F.pad(c, (0, pw, 0, ph)), (ch, cw)


def relative_l2(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=150, help="at least this many crops (whole images)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    manifest = json.load(open(os.path.join(REF, "manifest.json")))
    ckpt = manifest["vit8"]
    sd = torch.load(os.path.join(REF, ckpt), map_location="cpu")
    sd = {k: v.float() for k, v in sd.items()}
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    assert depth == manifest["depth"] == 2, depth
    assert sd["patch_embed.proj.weight"].shape == (DIM, 3, PATCH, PATCH)

    # 1. the forward reproduces the manifest's 12 reference CLS vectors
    worst = 0.0
    with torch.no_grad():
        for c in manifest["cls"]:
            x, hw = crop(load_normalized(os.path.join(COCO_MINI_IMAGES, c["image"])), c["bbox"])
            assert list(hw) == c["crop_hw"], (c["image"], hw, c["crop_hw"])
            rel = relative_l2(vit_cls(x[None], sd, depth)[0].numpy(), c["cls"])
            worst = max(worst, rel)
    print(f"manifest check: {len(manifest['cls'])} crops, max relative L2 ||a-b||/||b|| = {worst:.3e}")
    if worst > 1e-5:
        raise SystemExit("the forward does not reproduce the manifest cls vectors")

    # 2. demo crops
    coco = json.load(open(os.path.join(DEMO, "instances.json")))
    anns = {}
    for a in coco["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    cases = []
    with torch.no_grad():
        for im in coco["images"]:
            if len(cases) >= args.count:
                break
            chosen = [a for a in anns.get(im["id"], []) if not a["iscrowd"] and a["bbox"][2] >= 1 and a["bbox"][3] >= 1]
            if not chosen:
                continue
            t = load_normalized(os.path.join(DEMO, "images", im["file_name"]))
            assert tuple(t.shape[1:]) == (im["height"], im["width"]), im["file_name"]
            for a in chosen:
                x, (ch, cw) = crop(t, a["bbox"])
                v = vit_cls(x[None], sd, depth)[0].numpy().astype(np.float32)
                bx, by, bw, bh = a["bbox"]
                border = round(bx) <= 0 or round(by) <= 0 or round(bx + bw) >= im["width"] or round(by + bh) >= im["height"]
                cases.append({
                    "image": im["file_name"], "ann_id": a["id"], "bbox": a["bbox"], "crop_hw": [ch, cw],
                    "border": border,
                    "cls": [float(f"{float(z):.8g}") for z in v],
                })
    hws = np.array([c["crop_hw"] for c in cases])
    small = int((hws.min(1) < 16).sum())
    thin = int((hws.max(1) >= 4 * hws.min(1)).sum())
    border = sum(c["border"] for c in cases)
    images = len({c["image"] for c in cases})
    out = {
        "note": "stage-ii CLS embeddings (after the final norm) of demo GT box crops, made by "
                "tools/make-cls-fixtures.py (plain-torch DINO ViT forward, float32 CPU, batch 1); "
                "values are float32 written with 8 significant digits",
        "torch": torch.__version__,
        "checkpoint": ckpt,
        "patch": PATCH,
        "images_dir": "data/demo/images",
        "manifest_check_max_relative_l2": float(f"{worst:.4g}"),
        "counts": {"crops": len(cases), "images": images, "min_side_lt_16": small, "aspect_ge_4": thin, "touching_border": border},
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(cases)} crops from {images} images (min side < 16 px: {small}, aspect >= 4: {thin}, touching the border: {border}); "
          f"crop sizes {hws.min(0).tolist()}..{hws.max(0).tolist()}; wrote {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
