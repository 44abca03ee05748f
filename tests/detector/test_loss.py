"""Multibox loss: hard-negative mining by hand, empty images, and learning on real VOC images."""

from __future__ import annotations

import defusedxml.ElementTree as ET
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.data.boxes import voc_to_xyxy
from pipeline.detector.coding import encode
from pipeline.detector.loss import multibox_loss
from pipeline.detector.model import ModelConfig, build_detector
from tests.detector.train_helpers import one_thread


def _background_ce(logits: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(logits, -1) - logits[..., 0]


def test_empty_gt_zero_box_loss_and_ce_from_hardest_negatives_only():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 50, 4, generator=g) * 3
    deltas = torch.randn(2, 50, 4, generator=g)
    anchors = torch.rand(50, 4, generator=g) * 0.5 + 0.1
    labels = torch.zeros(2, 50, dtype=torch.long)
    out = multibox_loss(logits, deltas, labels, torch.zeros(2, 50, 4), anchors, neg_pos_ratio=3)
    assert out["box"].item() == 0.0
    # each image contributes its 3 hardest negatives; normaliser max(0 positives, 1) = 1
    expected = _background_ce(logits).topk(3, dim=1).values.sum()
    torch.testing.assert_close(out["cls"], expected)
    assert out["cls"] > 0
    torch.testing.assert_close(out["loss"], out["cls"])


def test_three_negatives_per_positive_and_normalisation():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 40, 3, generator=g) * 2
    deltas = torch.randn(2, 40, 4, generator=g)
    anchors = torch.rand(40, 4, generator=g) * 0.4 + 0.2
    labels = torch.zeros(2, 40, dtype=torch.long)
    labels[0, [3, 7]] = torch.tensor([1, 2])  # image 0: 2 positives -> 6 negatives
    labels[1, 11] = 2  # image 1: 1 positive -> 3 negatives
    matched = torch.rand(2, 40, 2, generator=g) * 0.4
    matched = torch.cat((matched, matched + 0.3), -1)
    out = multibox_loss(logits, deltas, labels, matched, anchors, neg_pos_ratio=3)

    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(2, 40)
    neg = _background_ce(logits).masked_fill(labels > 0, float("-inf"))
    cls = ce[labels > 0].sum() + neg[0].topk(6).values.sum() + neg[1].topk(3).values.sum()
    torch.testing.assert_close(out["cls"], cls / 3)
    l1 = F.smooth_l1_loss(deltas, encode(matched, anchors), reduction="none").sum(-1)
    torch.testing.assert_close(out["box"], l1[labels > 0].sum() / 3)


def _voc_batch(root, ids, size=300):
    images, boxes, labels, classes = [], [], [], {}
    for iid in ids:
        tree = ET.parse(root / "Annotations" / f"{iid}.xml").getroot()
        img = Image.open(root / "JPEGImages" / f"{iid}.jpg").convert("RGB")
        w, h = img.size
        images.append(torch.from_numpy(np.array(img.resize((size, size), Image.BILINEAR))).permute(2, 0, 1))
        b, lbl = [], []
        for obj in tree.iter("object"):
            bb = obj.find("bndbox")
            x0, y0, x1, y1 = voc_to_xyxy(*(float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")))
            b.append([x0 / w, y0 / h, x1 / w, y1 / h])
            lbl.append(classes.setdefault(obj.find("name").text, len(classes) + 1))
        boxes.append(b)
        labels.append(lbl)
    g = max(len(b) for b in boxes)
    gt_boxes = torch.zeros(len(ids), g, 4)
    gt_labels = torch.zeros(len(ids), g, dtype=torch.long)
    for i, (b, lbl) in enumerate(zip(boxes, labels, strict=True)):
        gt_boxes[i, : len(b)] = torch.tensor(b)
        gt_labels[i, : len(lbl)] = torch.tensor(lbl)
    return torch.stack(images), gt_boxes, gt_labels, len(classes)


def test_loss_decreases_on_real_voc_images(shared_data):
    images, gt_boxes, gt_labels, num_classes = _voc_batch(
        shared_data / "voc" / "VOCdevkit" / "VOC2007", ["000005", "000009"]
    )
    assert gt_labels.gt(0).sum(1).tolist() == [5, 4]  # five chairs; a horse and three people
    torch.manual_seed(0)
    model = build_detector(ModelConfig(variant="atss", width=0.125), num_classes, init_backbone=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    with one_thread():  # 1.6 s CPU; last/first loss 0.33 / 0.30 for seeds 0 / 1 (measured)
        for _ in range(5):
            out = model.loss(*model(images), gt_boxes, gt_labels)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            losses.append(out["loss"].item())
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses
