#!/usr/bin/python3
"""Reference outputs of OpenCV (Debian python3-opencv 4.6) for src/data/resizeOpenCv.ts and the
stage-v segmentation transforms (src/segmentation/transforms.ts).

* resize: cv2.resize with INTER_NEAREST / INTER_LINEAR / INTER_CUBIC on small crops of real VOC/COCO
  images (3 channels and 1 channel), a VOC label map and 0/255 patterns, up and down, odd sizes
  (row lengths that end in OpenCV's scalar tail), one-pixel sizes and the exact 2x shrink.
* warp: cv2.warpAffine with cv2.getRotationMatrix2D on the same crops, angles within and beyond the
  reference's +-5 degrees, scales 0.75..1.25, black / 0 border (the reference's defaults).
* matrix: cv2.getRotationMatrix2D values (double) for many centres / angles / scales.
* transforms: the reference's training composition with fixed parameters and its val composition,
  run on full VOC images with their label PNGs; see reference_train / reference_val below.

Outputs are MD5s of the raw bytes; small ones are also stored as PNG (diagnostics on mismatch).
Run: /usr/bin/python3 tools/make-opencv-fixtures.py    (writes test/fixtures/opencv/)
"""
import glob
import hashlib
import json
import os

import cv2
import numpy as np
import torch
import torchvision
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data")
OUT = os.path.join(ROOT, "test", "fixtures", "opencv")
FLAGS = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
PNG_LIMIT = 20_000  # raw output bytes above which only an MD5 is stored


def md5(a):
    return hashlib.md5(np.ascontiguousarray(a).tobytes()).hexdigest()


def save_png(a, rel):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(a).save(path, optimize=True)
    return rel


def voc(name):
    return os.path.join(DATA, "voc-mini", "JPEGImages", name + ".jpg")


def voc_label(name):
    return os.path.join(DATA, "voc-mini", "SegmentationClass", name + ".png")


def coco(name):
    return os.path.join(DATA, "coco-mini", "images", name + ".jpg")


def load_rgb(path):
    # the reference's loader: PIL decode, convert('RGB'), numpy array (H, W, 3) uint8
    return np.array(Image.open(path).convert("RGB"))


def load_label(path):
    return np.array(Image.open(path))


# ---- the reference's stage-v transforms, re-written from its code with parameters passed in ---------
# segmentation/utils/common_config.py get_train_transformations / get_val_transformations
# ('fblib_pascal'): RandomHorizontalFlip -> ScaleNRotate(rots=(-5, 5), scales=(.75, 1.25),
# flagvals image INTER_CUBIC, semseg INTER_NEAREST) -> FixedResize(512x512, image INTER_CUBIC,
# semseg INTER_NEAREST) -> ToTensor -> Normalize(ImageNet). The transform classes live in
# data/dataloaders/fblib_transforms.py (the MaskContrast file the repo imports; ScaleNRotate.__call__,
# FixedResize.__call__, RandomHorizontalFlip.__call__, ToTensor, Normalize) and
# data/util/helpers.py fixed_resize. The dataset (data/dataloaders/pascal_voc*.py __getitem__)
# first resizes the label to the image size with INTER_NEAREST when they differ.
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def reference_sample(image, label):
    if label.shape != image.shape[:2]:
        label = cv2.resize(label, image.shape[:2][::-1], interpolation=cv2.INTER_NEAREST)
    return {"image": image, "semseg": label}


def scale_n_rotate(sample, rot, sc):
    # ScaleNRotate.__call__ with rot / sc given instead of drawn from numpy's global RNG
    flagvals = {"semseg": cv2.INTER_NEAREST, "image": cv2.INTER_CUBIC}
    for elem in ("image", "semseg"):
        tmp = sample[elem]
        h, w = tmp.shape[:2]
        center = (w / 2, h / 2)
        M = cv2.getRotationMatrix2D(center, rot, sc)
        sample[elem] = cv2.warpAffine(tmp, M, (w, h), flags=flagvals[elem])
    return sample


def fixed_resize(sample, size=(512, 512)):
    # FixedResize.__call__ -> helpers.fixed_resize(sample, resolution, flagval): cv2.resize(..., resolution[::-1])
    sample["image"] = cv2.resize(sample["image"], size[::-1], interpolation=cv2.INTER_CUBIC)
    sample["semseg"] = cv2.resize(sample["semseg"], size[::-1], interpolation=cv2.INTER_NEAREST)
    return sample


def to_tensor_normalize(sample):
    # fblib ToTensor (torchvision ToTensor on the uint8 image, torch.from_numpy(...).long() on the label)
    # then Normalize (torchvision Normalize on the image)
    img = torchvision.transforms.ToTensor()(sample["image"])
    img = torchvision.transforms.Normalize(MEAN, STD)(img)
    return img.permute(1, 2, 0).contiguous().numpy(), torch.from_numpy(sample["semseg"]).long().numpy()


def reference_train(image, label, flip, rot, sc):
    sample = reference_sample(image, label)
    if flip:  # RandomHorizontalFlip: cv2.flip(tmp, flipCode=1) on every element
        sample = {k: cv2.flip(v, flipCode=1) for k, v in sample.items()}
    sample = scale_n_rotate(sample, rot, sc)
    sample = fixed_resize(sample)
    return sample, to_tensor_normalize(dict(sample))


def reference_val(image, label):
    sample = fixed_resize(reference_sample(image, label))
    return sample, to_tensor_normalize(dict(sample))


def main():
    assert cv2.__version__.startswith("4.6"), cv2.__version__
    os.makedirs(OUT, exist_ok=True)
    for old in glob.glob(os.path.join(OUT, "**", "*.*"), recursive=True):
        os.remove(old)

    inputs = {}

    def add_input(name, a, source):
        rel = save_png(a, f"in/{name}.png")
        inputs[name] = {"file": rel, "width": a.shape[1], "height": a.shape[0],
                        "channels": 1 if a.ndim == 2 else a.shape[2], "source": source}
        return a

    srcs = {
        "voc39": add_input("voc39", load_rgb(voc("2007_000039"))[120:183, 150:237], "voc 2007_000039.jpg rows 120:183, cols 150:237"),
        "coco9": add_input("coco9", load_rgb(coco("000000000009"))[200:290, 300:420], "coco 000000000009.jpg rows 200:290, cols 300:420"),
        "coco25": add_input("coco25", load_rgb(coco("000000000025"))[100:141, 200:253], "coco 000000000025.jpg rows 100:141, cols 200:253"),
    }
    srcs["coco9_L"] = add_input("coco9_L", cv2.cvtColor(srcs["coco9"], cv2.COLOR_RGB2GRAY), "coco9 crop, cv2 RGB2GRAY")
    srcs["label39"] = add_input("label39", load_label(voc_label("2007_000039"))[100:190, 120:260],
                                "voc SegmentationClass 2007_000039.png rows 100:190, cols 120:260 (values 0, 20, 255)")
    rng = np.random.RandomState(4321)
    srcs["noise_L"] = add_input("noise_L", (rng.rand(23, 31) > 0.5).astype(np.uint8) * 255, "0/255 pattern 31x23, seed 4321")
    srcs["noise_RGB"] = add_input("noise_RGB", (rng.rand(19, 27, 3) > 0.5).astype(np.uint8) * 255, "0/255 RGB pattern 27x19, seed 4321")

    # ---- resize --------------------------------------------------------------------------------
    def rel_sizes(w, h):
        return [(w * 2, h * 2), (w // 2, h // 2), (w * 3 // 2 + 1, h * 5 // 4), (w * 2 // 3, h * 3 // 4 + 1),
                (w + 1, h - 1), (w - 3, h + 5), (1, 1), (1, h), (w, 1), (7, 5), (w * 4 + 3, h * 3 + 1),
                (512, 512), (w // 3, h // 5 + 1)]

    resize_cases = []
    for name, a in srcs.items():
        h, w = a.shape[:2]
        filters = ["nearest"] if name.startswith("label") else list(FLAGS)
        sizes = rel_sizes(w, h)
        if name == "voc39":
            sizes += [(w - w % 2, h - h % 2)]  # even crop for an exact 2x shrink below
        for ow, oh in sizes:
            for f in filters:
                out = cv2.resize(a, (ow, oh), interpolation=FLAGS[f])
                case = {"input": name, "filter": f, "width": ow, "height": oh, "md5": md5(out)}
                if out.nbytes <= PNG_LIMIT:
                    case["file"] = save_png(out, f"resize/{name}_{f}_{ow}x{oh}.png")
                resize_cases.append(case)
    # exact 2x shrink (OpenCV runs INTER_AREA for INTER_LINEAR here) on an even-sized crop
    even = add_input("voc39_even", srcs["voc39"][:62, :86], "voc39 crop rows 0:62, cols 0:86")
    for f in FLAGS:
        out = cv2.resize(even, (43, 31), interpolation=FLAGS[f])
        resize_cases.append({"input": "voc39_even", "filter": f, "width": 43, "height": 31, "md5": md5(out),
                             "file": save_png(out, f"resize/voc39_even_{f}_43x31.png")})

    # ---- rotation matrices ---------------------------------------------------------------------
    matrices = []
    mrng = np.random.RandomState(7)
    for _ in range(300):
        w, h = int(mrng.randint(1, 1000)), int(mrng.randint(1, 1000))
        rot = float((5 - -5) * mrng.rand() - (5 - -5) / 2)
        sc = float((1.25 - 0.75) * mrng.rand() - (1.25 - 0.75) / 2 + 1)
        M = cv2.getRotationMatrix2D((w / 2, h / 2), rot, sc)
        matrices.append({"cx": w / 2, "cy": h / 2, "angle": rot, "scale": sc, "m": [float(v) for v in M.ravel()]})
    for _ in range(100):  # any angle: the sine/cosine must round like glibc's beyond +-5 degrees too
        w, h = int(mrng.randint(1, 1000)), int(mrng.randint(1, 1000))
        rot, sc = float(mrng.uniform(-360, 360)), float(mrng.uniform(0.1, 3))
        M = cv2.getRotationMatrix2D((w / 2, h / 2), rot, sc)
        matrices.append({"cx": w / 2, "cy": h / 2, "angle": rot, "scale": sc, "m": [float(v) for v in M.ravel()]})
    for rot, sc in [(0.0, 1.0), (90.0, 1.0), (-30.0, 0.5), (45.0, 2.0), (180.0, 1.0), (-90.0, 1.0), (270.0, 1.0), (360.0, 1.0)]:
        M = cv2.getRotationMatrix2D((100.5 / 2, 77 / 2), rot, sc)
        matrices.append({"cx": 100.5 / 2, "cy": 77 / 2, "angle": rot, "scale": sc, "m": [float(v) for v in M.ravel()]})

    # ---- warpAffine ------------------------------------------------------------------------------
    warp_cases = []
    params = [(4.3, 1.2), (-2.7, 0.8), (0.0, 1.0), (5.0, 0.75), (-5.0, 1.25), (0.8, 1.03), (30.0, 1.0), (-45.0, 0.6), (12.5, 1.7)]
    for name, a in srcs.items():
        h, w = a.shape[:2]
        filters = ["nearest"] if name.startswith("label") else list(FLAGS)
        for rot, sc in params:
            M = cv2.getRotationMatrix2D((w / 2, h / 2), rot, sc)
            for f in filters:
                for (ow, oh) in [(w, h)] + ([(w + 9, h - 4)] if rot == 4.3 else []):
                    out = cv2.warpAffine(a, M, (ow, oh), flags=FLAGS[f])
                    case = {"input": name, "filter": f, "angle": rot, "scale": sc, "width": ow, "height": oh,
                            "m": [float(v) for v in M.ravel()], "md5": md5(out)}
                    if out.nbytes <= PNG_LIMIT:
                        case["file"] = save_png(out, f"warp/{name}_{f}_{rot}_{sc}_{ow}x{oh}.png")
                    warp_cases.append(case)
    # a label warped with a non-zero border value (the API allows it; the reference uses 0)
    lab = srcs["label39"]
    M = cv2.getRotationMatrix2D((lab.shape[1] / 2, lab.shape[0] / 2), 3.0, 0.8)
    out = cv2.warpAffine(lab, M, (lab.shape[1], lab.shape[0]), flags=cv2.INTER_NEAREST, borderValue=255)
    warp_cases.append({"input": "label39", "filter": "nearest", "angle": 3.0, "scale": 0.8, "width": lab.shape[1],
                       "height": lab.shape[0], "border": 255, "m": [float(v) for v in M.ravel()], "md5": md5(out)})

    # ---- the reference's transform compositions on full images -------------------------------------
    transforms = []
    tcases = [("2007_000039", True, 4.21, 1.17), ("2007_000063", False, -3.62, 0.79), ("2011_000003", True, -0.35, 1.02),
              ("2011_000025", False, 5.0, 0.75)]
    for name, flip, rot, sc in tcases:
        image, label = load_rgb(voc(name)), load_label(voc_label(name))
        sample, (img, lab) = reference_train(image, label, flip, rot, sc)
        entry = {"image": f"data/voc-mini/JPEGImages/{name}.jpg", "label": f"data/voc-mini/SegmentationClass/{name}.png",
                 "input_md5": md5(image), "kind": "train", "flip": flip, "angle": rot, "scale": sc,
                 "image_u8_md5": md5(sample["image"]), "label_md5": md5(sample["semseg"]),
                 "normalized_md5": md5(img.astype(np.float32)), "normalized_sum": float(img.astype(np.float64).sum()),
                 "label_values": sorted(int(v) for v in np.unique(lab))}
        transforms.append(entry)
    for name in ["2007_000039", "2011_000025"]:
        image, label = load_rgb(voc(name)), load_label(voc_label(name))
        sample, (img, lab) = reference_val(image, label)
        transforms.append({"image": f"data/voc-mini/JPEGImages/{name}.jpg", "label": f"data/voc-mini/SegmentationClass/{name}.png",
                           "input_md5": md5(image), "kind": "val",
                           "image_u8_md5": md5(sample["image"]), "label_md5": md5(sample["semseg"]),
                           "normalized_md5": md5(img.astype(np.float32)), "normalized_sum": float(img.astype(np.float64).sum()),
                           "label_values": sorted(int(v) for v in np.unique(lab))})
    # one label smaller than its image (the dataset's INTER_NEAREST alignment comes first)
    image = load_rgb(voc("2007_000063"))
    small = cv2.resize(load_label(voc_label("2007_000063")), (250, 187), interpolation=cv2.INTER_NEAREST)
    save_png(small, "in/label63_small.png")
    sample, (img, lab) = reference_train(image, small, True, 2.5, 0.9)
    transforms.append({"image": "data/voc-mini/JPEGImages/2007_000063.jpg", "label": "test/fixtures/opencv/in/label63_small.png",
                       "input_md5": md5(image), "kind": "train", "flip": True, "angle": 2.5, "scale": 0.9,
                       "image_u8_md5": md5(sample["image"]), "label_md5": md5(sample["semseg"]),
                       "normalized_md5": md5(img.astype(np.float32)), "normalized_sum": float(img.astype(np.float64).sum()),
                       "label_values": sorted(int(v) for v in np.unique(lab))})

    index = {
        "generator": "tools/make-opencv-fixtures.py",
        "opencv": cv2.__version__, "numpy": np.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
        "inputs": inputs, "resize": resize_cases, "matrices": matrices, "warp": warp_cases, "transforms": transforms,
    }
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    print(f"{len(resize_cases)} resize, {len(warp_cases)} warp, {len(matrices)} matrices, {len(transforms)} transforms")


if __name__ == "__main__":
    main()
