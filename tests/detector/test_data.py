"""DetectionDataset, padded collate, the resumable sampler and the DataLoader recipe on real sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.data.images import ImageError, write_image
from pipeline.data.schema import ImageRecord, images_dir
from pipeline.detector.data import (
    DetectionDataset,
    ResumableSampler,
    collate,
    make_loader,
    to_device,
)
from pipeline.detector.transforms import eval_transform, ssd_train_transform

CLASSES = ["cat", "dog"]


def _records(n: int = 6) -> list[ImageRecord]:
    recs = []
    for i in range(n):
        k = 2 if i == 4 else i % 3  # 0, 1 or 2 objects
        boxes = np.array([[10, 10, 40, 30], [50, 20, 90, 60]], np.float32)[:k]
        recs.append(
            ImageRecord(
                image_id=f"im{i}", file_name=f"im{i}.jpg", split="train" if i < n - 1 else "test",
                width=100, height=80, boxes=boxes, labels=np.array([0, 1])[:k],
                difficult=np.array([False, i == 4])[:k], iscrowd=np.zeros(k, bool),
            )
        )
    return recs


def test_dataset_items_follow_the_table_and_drop_difficult(make_set) -> None:
    set_dir = make_set(_records(), CLASSES)
    ds = DetectionDataset(set_dir, "train", eval_transform(50))
    assert len(ds) == 5 and ds.classes == CLASSES
    img, boxes, labels = ds[1]
    assert img.shape == (50, 50, 3) and img.dtype == torch.uint8
    np.testing.assert_allclose(boxes.numpy(), [[0.1, 0.125, 0.4, 0.375]], rtol=1e-6)
    assert labels.tolist() == [1]  # 1-based
    # im4 has its second (dog) object marked difficult: dropped by default, kept on request
    assert ds[4][2].tolist() == [1]
    keep = DetectionDataset(set_dir, "train", eval_transform(50), include_difficult=True)
    assert keep[4][2].tolist() == [1, 2]
    assert ds[0][1].shape == (0, 4)


def test_collate_pads_targets_with_label_zero(make_set) -> None:
    ds = DetectionDataset(make_set(_records(), CLASSES), "train", eval_transform(32))
    images, boxes, labels = collate([ds[0], ds[2], ds[1]])
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.uint8
    assert boxes.shape == (3, 2, 4) and labels.shape == (3, 2)
    assert labels.tolist() == [[0, 0], [1, 2], [1, 0]]
    assert (boxes[0] == 0).all() and (boxes[2, 1] == 0).all()
    # the (S, S, 3) item becomes channel-first with the same pixels
    assert torch.equal(images[1], ds[2][0].permute(2, 0, 1))
    only_empty = collate([ds[0]])
    assert only_empty[1].shape == (1, 1, 4) and only_empty[2].tolist() == [[0]]
    img_f, _, _ = to_device((images, boxes, labels), torch.device("cpu"), channels_last=True)
    assert img_f.dtype == torch.float32 and 0 <= img_f.min() and img_f.max() <= 1
    assert img_f.is_contiguous(memory_format=torch.channels_last)


def test_augmentation_depends_only_on_seed_epoch_and_index(make_set) -> None:
    ds = DetectionDataset(make_set(_records(), CLASSES), "train", ssd_train_transform(48), seed=5)
    a, b = ds[(3, 2)], ds[(3, 2)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=False))
    c = ds[(4, 2)]
    assert not torch.equal(a[0], c[0])
    other_seed = DetectionDataset(ds.set_dir, "train", ssd_train_transform(48), seed=6)
    assert not torch.equal(a[0], other_seed[(3, 2)][0])


def test_sampler_permutes_per_epoch_shards_ranks_and_resumes_mid_epoch(make_set) -> None:
    ds = DetectionDataset(make_set(_records(9), CLASSES), "train", eval_transform(16))
    s = ResumableSampler(ds, seed=1)
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert sorted(i for _, i in e0) == list(range(8)) and {e for e, _ in e1} == {1}
    assert [i for _, i in e0] != [i for _, i in e1]
    s.set_epoch(1, start=3)
    assert list(s) == e1[3:] and len(s) == 5
    r0, r1 = (ResumableSampler(ds, num_replicas=2, rank=r, seed=1) for r in (0, 1))
    r0.set_epoch(1)
    r1.set_epoch(1)
    assert sorted(i for _, i in list(r0) + list(r1)) == list(range(8))


def test_loader_with_workers_equals_in_process_loading(make_set) -> None:
    ds = DetectionDataset(make_set(_records(9), CLASSES), "train", ssd_train_transform(40), seed=3)

    def batches(workers: int) -> list:
        sampler = ResumableSampler(ds, seed=3)
        loader = make_loader(ds, sampler, batch_size=3, num_workers=workers, pin_memory=False)
        out = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            out += list(loader)
        return out

    ref, par = batches(0), batches(2)
    assert len(ref) == 4  # 8 train images, batch 3, last partial batch dropped, 2 epochs
    for x, y in zip(ref, par, strict=False):
        assert all(torch.equal(a, b) for a, b in zip(x, y, strict=False))


def test_bad_images_are_named(make_set) -> None:
    set_dir = make_set(_records(), CLASSES)
    (images_dir(set_dir) / "im1.jpg").write_bytes(b"not a jpeg")
    write_image(images_dir(set_dir) / "im2.jpg", np.zeros((10, 10, 3), np.uint8))
    ds = DetectionDataset(set_dir, "train", eval_transform(16))
    with pytest.raises(ImageError, match="im1.jpg"):
        ds[1]
    with pytest.raises(ImageError, match=r"im2.jpg.*10x10 != table size 100x80"):
        ds[2]
    (images_dir(set_dir) / "im3.jpg").unlink()
    with pytest.raises(ImageError, match="im3.jpg: image file not found"):
        ds[3]
    with pytest.raises(ValueError, match="no images in split"):
        DetectionDataset(set_dir, "nosuch", eval_transform(16))


def test_genuine_voc_images_load(shared_data: Path, tmp_path: Path) -> None:
    """A real JPEG from VOC goes through decode + SSD recipe (no set needed: transform API)."""
    jpgs = sorted((shared_data / "voc" / "VOCdevkit" / "VOC2007" / "JPEGImages").glob("*.jpg"))
    if not jpgs:
        pytest.skip("no VOC2007 JPEGs")
    from pipeline.data.images import read_image

    img = read_image(jpgs[0])
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    out, boxes, labels = ssd_train_transform(300)(
        img, np.array([[10, 10, 100, 120]], np.float32), np.array([3]), np.random.default_rng(0)
    )
    assert out.shape == (300, 300, 3) and ((boxes >= 0) & (boxes <= 1)).all()
