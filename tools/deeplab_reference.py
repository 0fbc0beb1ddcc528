"""The reference's DeepLab training pieces that our parity fixtures and the DeepLab bench both run in torch.

ohem: segmentation/losses.py CrossEntropyOHEM (per-pixel cross-entropy, ignore 255, mean of the top
`threshold` share of all pixels among the valid ones). freeze_front: multi_gpu.py's frozen conv1..layer2
(eval mode, no gradients) on torchvision's deeplabv3_resnet50.
"""
import torch
import torch.nn.functional as F


def ohem(prediction, target, threshold=0.2):
    losses = F.cross_entropy(prediction, target.long(), ignore_index=255, reduction="none")
    valid = torch.masked_select(losses, target != 255)
    k = min(int(threshold * losses.numel()), valid.numel())
    return torch.topk(valid, k)[0].mean()


def freeze_front(model):
    """conv1, bn1, layer1 and layer2 in eval mode without gradients; call after model.train()."""
    b = model.backbone
    for m in (b.conv1, b.bn1, b.layer1, b.layer2):
        m.eval()
        for p in m.parameters():
            p.requires_grad = False
