# The peer of bench/roialign.ts: torchvision.ops.roi_align (aligned, adaptive sampling) forward and gradient on the
# maps, boxes and levels that bench wrote to DIR (NHWC float32 → NCHW), one call per pyramid level as
# MultiScaleRoIAlign makes them, one thread. Prints {"<case>": {"forward_s": median, "backward_s": median}}.
import json, os, sys, time
import numpy as np
import torch
from torchvision.ops import roi_align

torch.set_num_threads(1)
d = sys.argv[1]
spec = json.load(open(os.path.join(d, "spec.json")))
maps = []
for l, (n, h, w, c) in enumerate(spec["shapes"]):
    a = np.fromfile(os.path.join(d, f"map{l}.f32"), dtype=np.float32).reshape(n, h, w, c)
    maps.append(torch.from_numpy(a).permute(0, 3, 1, 2).contiguous().requires_grad_(True))
out = {}
for i, case in enumerate(spec["cases"]):
    boxes = torch.from_numpy(np.fromfile(os.path.join(d, f"boxes{i}.f32"), dtype=np.float32).reshape(-1, 4))
    index = torch.from_numpy(np.fromfile(os.path.join(d, f"index{i}.i32"), dtype=np.int32).astype(np.float32))
    levels = np.fromfile(os.path.join(d, f"levels{i}.i32"), dtype=np.int32)
    rois = torch.cat([index[:, None], boxes], 1)
    fwd, bwd = [], []
    for r in range(spec["runs"] + 1):
        for m in maps:
            m.grad = None
        t0 = time.perf_counter()
        parts = []
        for l, (m, s) in enumerate(zip(maps, spec["scales"])):
            sel = torch.from_numpy(np.nonzero(levels == l)[0])
            if len(sel):
                parts.append(roi_align(m, rois[sel], (case["size"], case["size"]), spatial_scale=s, sampling_ratio=0, aligned=True))
        t1 = time.perf_counter()
        torch.cat(parts).sum().backward()
        t2 = time.perf_counter()
        if r > 0:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    out[str(i)] = {"forward_s": float(np.median(fwd)), "backward_s": float(np.median(bwd))}
print(json.dumps(out))
