"""Annotation readers on genuine files and on hand-made broken ones."""

import json

import pytest

from pipeline.data.coco import load_coco
from pipeline.data.voc import VOC_CLASSES, AnnotationError, parse_voc_xml, read_id_list


def test_parse_genuine_voc(shared_data):
    ann = parse_voc_xml(shared_data / "voc/VOCdevkit/VOC2007/Annotations/000005.xml")
    assert (ann.width, ann.height) == (500, 375)
    assert [o.name for o in ann.objects] == ["chair"] * 5
    assert any(o.difficult for o in ann.objects)  # 000005 has difficult chairs
    assert all(o.name in VOC_CLASSES for o in ann.objects)
    ann1 = parse_voc_xml(shared_data / "voc/VOCdevkit/VOC2007/Annotations/000001.xml")
    assert ann1.objects[0].box == (48.0, 240.0, 195.0, 371.0)


def test_voc_errors(tmp_path):
    with pytest.raises(AnnotationError, match="not found"):
        parse_voc_xml(tmp_path / "nope.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotation><size><width>3</width>")
    with pytest.raises(AnnotationError, match=r"bad\.xml: malformed XML"):
        parse_voc_xml(bad)
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<!DOCTYPE a [<!ENTITY x "xxxxxxxx">]><annotation>&x;</annotation>')
    with pytest.raises(AnnotationError, match="malformed XML"):  # defusedxml refuses entities
        parse_voc_xml(bomb)
    nobox = tmp_path / "nobox.xml"
    nobox.write_text("<annotation><size><width>10</width><height>10</height></size>"
                     "<object><name>cat</name><bndbox><xmin>a</xmin></bndbox></object></annotation>")
    with pytest.raises(AnnotationError, match="<xmin> is not a number"):
        parse_voc_xml(nobox)
    lst = tmp_path / "l.txt"
    lst.write_text("a\nb\na\n")
    with pytest.raises(AnnotationError, match="duplicate ids"):
        read_id_list(lst)


def test_load_genuine_coco(shared_data):
    coco = load_coco(shared_data / "coco/annotations/instances_val2017.json")
    assert len(coco.categories) == 80 and coco.categories[0] == (1, "person")
    assert [c for c, _ in coco.categories] == sorted(c for c, _ in coco.categories)
    assert len(coco.images) == 80 and sum(len(i.annotations) for i in coco.images) == 815
    assert coco.orphans == []


def test_coco_errors(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(AnnotationError, match=r"x\.json: malformed JSON"):
        load_coco(p)
    p.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(AnnotationError, match="'categories'"):
        load_coco(p)
    p.write_text(json.dumps({"images": [{"id": 1}], "annotations": [], "categories": []}))
    with pytest.raises(AnnotationError, match=r"images\[0\]"):
        load_coco(p)
