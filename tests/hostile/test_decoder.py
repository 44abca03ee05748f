"""One image decoder (issue 10, item 3): JPEGs carrying an EXIF Orientation tag reach ingest,
degrade, training and evaluation as the same stored pixel grid the boxes refer to.

Real JPEGs with Orientation 6 / 8 (rotate 90°), square and non-square, go through a local
VOC source, ingest, degrade, the training dataset and the evaluation loader.  OpenCV with
``IMREAD_IGNORE_ORIENTATION`` is the independent reference for the stored grid; plain
``cv2.imread`` (what training used before) applies the tag and must give other pixels,
so the files really are rotated ones.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.data.degrade import DegradeConfig, degrade_set, lr_size, resize_image
from pipeline.data.embedded import voc_xml
from pipeline.data.images import read_image
from pipeline.data.ingest import IngestConfig, ingest
from pipeline.data.schema import images_dir, read_records
from pipeline.data.sources import DataConfig, fetch
from pipeline.detector.data import DetectionDataset
from pipeline.detector.transforms import eval_transform, ssd_train_transform
from pipeline.evaluation.infer import SetImages

# id -> (split, width, height, EXIF orientation)
IMAGES = {"wide6": ("train", 96, 64, 6), "square6": ("train", 64, 64, 6), "wide8": ("test", 96, 64, 8)}
S = 48  # network input side in this test


def _pattern(w: int, h: int) -> np.ndarray:
    """Smooth, orientation-revealing content: gradients plus a bright block near the top-left."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)
    img[4:20, 6:30] = (250, 240, 20)
    return img


def _rotated_jpeg(path: Path, w: int, h: int, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pattern(w, h)).save(path, quality=95, exif=exif.tobytes())


def _stored(path: Path) -> np.ndarray:
    """The stored grid, decoded independently of the pipeline (OpenCV, orientation ignored)."""
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def hr_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local VOC2007-layout source of rotated JPEGs, fetched and ingested into an HR set."""
    root = tmp_path_factory.mktemp("exif")
    voc = root / "VOC2007"
    for iid, (_, w, h, o) in IMAGES.items():
        _rotated_jpeg(voc / "JPEGImages" / f"{iid}.jpg", w, h, o)
        (voc / "Annotations").mkdir(exist_ok=True)
        (voc / "Annotations" / f"{iid}.xml").write_text(
            voc_xml("VOC2007", f"{iid}.jpg", w, h, [("person", np.array([6.0, 4.0, 30.0, 20.0]))]))
    (voc / "ImageSets/Main").mkdir(parents=True)
    for split, name in (("train", "trainval"), ("test", "test")):
        ids = [i for i, v in IMAGES.items() if v[0] == split]
        (voc / "ImageSets/Main" / f"{name}.txt").write_text("\n".join(ids) + "\n")
    fetch(DataConfig(source="local", local_path=str(voc)), 0, root / "raw", progress=False)
    ingest(root / "raw", root / "hr", IngestConfig(), progress=False)  # sizes checked against the stored grid
    return root / "hr"


def test_files_are_really_rotated_and_read_image_gives_the_stored_grid(hr_set: Path) -> None:
    for r in read_records(hr_set)[0]:
        path = images_dir(hr_set) / r.file_name
        stored, exif_applied = _stored(path), cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        assert stored.shape == (r.height, r.width, 3)
        assert exif_applied.shape != stored.shape or not np.array_equal(exif_applied, stored)  # the tag acts
        np.testing.assert_array_equal(read_image(path), stored)


def test_training_dataset_sees_the_stored_grid_and_non_square_does_not_crash(hr_set: Path) -> None:
    ds = DetectionDataset(hr_set, "train", eval_transform(S))
    for i, r in enumerate(ds.records):
        stored = _stored(images_dir(hr_set) / r.file_name)
        want, _, _ = eval_transform(S)(stored, *ds.targets(i), np.random.default_rng(0))
        np.testing.assert_array_equal(ds[i][0].numpy(), want)
    assert {(r.width, r.height) for r in ds.records} == {(96, 64), (64, 64)}
    augmented = DetectionDataset(hr_set, "train", ssd_train_transform(S), seed=3)
    for i in range(len(augmented)):  # the full SSD recipe on the non-square rotated photo too
        image, boxes, labels = augmented[(0, i)]
        assert image.shape == (S, S, 3) and boxes.shape[1] == 4


def test_evaluation_loader_sees_the_stored_grid(hr_set: Path) -> None:
    records, _ = read_records(hr_set, "test")
    loader = SetImages(hr_set, records, S)
    for i, r in enumerate(records):
        stored = _stored(images_dir(hr_set) / r.file_name)
        want = cv2.resize(stored, (S, S), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
        np.testing.assert_array_equal(loader[i].numpy(), want)


def test_degrade_downsamples_the_stored_grid(hr_set: Path, tmp_path: Path) -> None:
    degrade_set(hr_set, tmp_path / "lr", DegradeConfig(scale=4.0, workers=1), progress=False)
    for r in read_records(tmp_path / "lr")[0]:
        hr_path = images_dir(hr_set) / r.file_name
        stored = _stored(hr_path)
        assert (r.width, r.height) == lr_size(stored.shape[1], stored.shape[0], 4.0)
        lr = read_image(images_dir(tmp_path / "lr") / r.file_name).astype(np.int16)
        assert lr.shape == (r.height, r.width, 3)
        want = resize_image(stored, (r.width, r.height)).astype(np.int16)
        assert np.abs(lr - want).mean() < 2.0  # the stored grid, up to JPEG re-encoding
        rotated = resize_image(np.ascontiguousarray(np.rot90(stored)), (r.height, r.width)).astype(np.int16)
        if rotated.shape == lr.shape:  # square: content, not shape, tells the orientation
            assert np.abs(lr - rotated).mean() > 20.0
