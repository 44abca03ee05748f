"""Build a throwaway set directory from the genuine VOC sample in ../shared/data (benchmarks only).

Minimal VOC XML reading (top-level <object>s); the real ingest lives in pipeline.data.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from pipeline.data.boxes import voc_to_xyxy
from pipeline.data.schema import ImageRecord, images_dir, records_to_table, table_path, write_table

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]


def voc_sample_set(dest: Path, year: str = "VOC2012", test_every: int = 5, replicate: int = 1) -> Path:
    """Copy the VOC sample's images into ``dest`` as a set; every ``test_every``-th image is "test".

    ``replicate > 1`` repeats the sample under ``r<k>/`` sub-directories (distinct image ids)
    so throughput is measured over enough images to amortise process-pool start-up.
    """
    root = SHARED / "voc" / "VOCdevkit" / year
    if not root.is_dir():
        raise FileNotFoundError(f"genuine VOC sample not found: {root}")
    recs = []
    for i, f in enumerate(sorted((root / "Annotations").glob("*.xml"))):
        x = ET.parse(f).getroot()
        objs = x.findall("object")
        boxes = [voc_to_xyxy(*(float(o.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))) for o in objs]
        name = x.findtext("filename").strip()
        size = int(x.findtext("size/width")), int(x.findtext("size/height"))
        split = "test" if i % test_every == test_every - 1 else "train"
        labels = np.asarray([VOC_CLASSES.index(o.findtext("name").strip()) for o in objs], np.int64)
        difficult = np.asarray([o.findtext("difficult", "0").strip() == "1" for o in objs], bool)
        for k in range(replicate):
            iid, fname = (f"{f.stem}_r{k}", f"r{k}/{name}") if replicate > 1 else (f.stem, name)
            recs.append(ImageRecord(
                iid, fname, split, *size,
                boxes=np.asarray(boxes, np.float32).reshape(-1, 4), labels=labels,
                difficult=difficult, iscrowd=np.zeros(len(objs), bool),
            ))
            (images_dir(dest) / fname).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / "JPEGImages" / name, images_dir(dest) / fname)
    write_table(table_path(dest), records_to_table(recs, VOC_CLASSES))
    return dest


if __name__ == "__main__":
    import sys

    print(voc_sample_set(Path(sys.argv[1])))
