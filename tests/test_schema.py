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


def test_boxes_keep_float64_and_optional_area_roundtrips(tmp_path):
    a = _rec("a", [[0, 0, 1, 1]], [0])
    a.boxes, a.area = np.array([[10.1, 2.3, 20.3, 40.7]]), np.array([123.25])  # float64, as ingest makes them
    b = _rec("b", [[1, 1, 5, 5], [2, 2, 9, 9]], [0, 0])  # no areas: NaN in the column, box areas in use
    write_table(tmp_path / "t.parquet", records_to_table([a, b, _rec("c", [], [])], ["cat"]))
    table = read_table(tmp_path / "t.parquet")
    assert table.schema.field("xmin").type == "double" and table.schema.field("area").type == "double"
    back = table_to_records(table)
    assert back[0].boxes.dtype == np.float64 and back[0].boxes[0, 0] == 10.1  # not 10.100000381
    assert back[0].object_areas().tolist() == [123.25]
    np.testing.assert_array_equal(back[1].area, [np.nan, np.nan])
    assert back[1].object_areas().tolist() == [16.0, 49.0]


def test_table_without_area_column_and_old_float32_tables_still_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = records_to_table([_rec("a", [[1, 2, 30, 40]], [0])], ["cat"])
    assert "area" not in table.schema.names
    old = table.cast(pa.schema([pa.field(f.name, pa.float32()) if f.name in ("xmin", "ymin", "xmax", "ymax")
                                else f for f in table.schema], metadata=table.schema.metadata))
    pq.write_table(old, tmp_path / "old.parquet")
    (rec,) = table_to_records(read_table(tmp_path / "old.parquet"))
    assert rec.area is None and rec.boxes.tolist() == [[1, 2, 30, 40]]


@pytest.mark.parametrize(("area", "msg"), [([-1.0], "non-positive or infinite area"),
                                           ([np.inf], "non-positive or infinite area"),
                                           ([1.0, 2.0], "2 areas for 1 objects")])
def test_bad_area_is_rejected_with_file_name(tmp_path, area, msg):
    r = _rec("a", [[1, 2, 30, 40]], [0])
    r.area = np.asarray(area)
    with pytest.raises(SchemaError, match=msg):
        write_table(tmp_path / "bad.parquet", records_to_table([r], ["cat"]))
    assert not (tmp_path / "bad.parquet").exists()
