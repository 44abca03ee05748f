import numpy as np
import pytest

from pipeline.data.schema import (
    ImageRecord,
    SchemaError,
    classes_of,
    read_records,
    read_table,
    records_to_table,
    table_path,
    table_to_records,
    write_table,
)


def _rec(iid, boxes, labels, split="train", w=100, h=80):
    return ImageRecord(
        iid, f"{iid}.jpg", split, w, h,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int64),
        difficult=np.zeros(len(labels), bool),
        iscrowd=np.zeros(len(labels), bool),
    )


def test_roundtrip_keeps_empty_images_and_classes(tmp_path):
    recs = [_rec("a", [[1, 2, 30, 40], [5, 5, 9, 9]], [0, 1]), _rec("b", [], [], split="test")]
    write_table(tmp_path / "t.parquet", records_to_table(recs, ["cat", "dog"]))
    table = read_table(tmp_path / "t.parquet")
    assert classes_of(table) == ["cat", "dog"]
    back = table_to_records(table)
    assert [r.image_id for r in back] == ["a", "b"]
    np.testing.assert_array_equal(back[0].boxes, recs[0].boxes)
    assert len(back[1]) == 0 and back[1].split == "test"


@pytest.mark.parametrize(
    "boxes,msg",
    [([[10, 10, 5, 20]], "degenerate"), ([[0, 0, 120, 20]], "outside")],
)
def test_bad_boxes_are_rejected_with_file_name(tmp_path, boxes, msg):
    with pytest.raises(SchemaError, match=msg) as err:
        write_table(tmp_path / "bad.parquet", records_to_table([_rec("a", boxes, [0])], ["cat"]))
    assert "bad.parquet" in str(err.value)
    assert not (tmp_path / "bad.parquet").exists()


def test_make_set_fixture_writes_real_images(make_set):
    root = make_set([_rec("a", [[1, 2, 30, 40]], [0])], ["cat"])
    recs, classes = read_records(root)
    assert classes == ["cat"] and (root / "images" / "a.jpg").stat().st_size > 0
    assert table_path(root).is_file()
