"""``python -m pipeline.predict`` on genuine VOC and COCO photos with a saved (random-init) checkpoint."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.data.images import image_size, read_image, write_image
from pipeline.detector.checkpoint import save_detector
from pipeline.predict import cli, main

from .conftest import COCO_VAL, VOC07, tiny_detector

needs_shared = pytest.mark.skipif(not (VOC07.is_dir() and COCO_VAL.is_dir()), reason="../shared/data absent")


def _load_res(doc: dict):
    """pycocotools: a COCO object holding the run's images and categories accepts the annotations as results."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = {"images": doc["images"], "categories": doc["categories"], "annotations": []}
    coco.createIndex()
    return coco.loadRes(doc["annotations"])


@needs_shared
def test_predict_genuine_voc_and_coco_writes_pictures_and_loadres_json(checkpoint, tmp_path, one_thread, capsys):
    voc = [str(VOC07 / "000005.jpg"), str(VOC07 / "000001.jpg")]
    coco_glob = str(COCO_VAL / "0000000[12]0*.jpg")  # a glob source: 000000010764.jpg, 000000020992.jpg
    out = tmp_path / "pred"
    code = main(["--checkpoint", str(checkpoint), "--source", *voc, coco_glob, "--out", str(out), "--method", "nms",
                 "--score", "0.045", "--max-det", "30", "--per-image", "--quiet"])
    assert code == 0
    doc = json.loads((out / "detections.json").read_text())
    assert [Path(im["file_name"]).name for im in doc["images"]] == ["000005.jpg", "000001.jpg", "000000010764.jpg",
                                                                    "000000020992.jpg"]
    assert [c["name"] for c in doc["categories"]][:3] == ["aeroplane", "bicycle", "bird"]
    assert doc["annotations"], "the random model scores some boxes above 0.045 (1/21 ~ 0.048 on average)"
    for im in doc["images"]:
        w, h = image_size(im["file_name"])
        assert (im["width"], im["height"]) == (w, h)
        pic = read_image(out / im["picture"])
        assert pic.shape == (h, w, 3)
        per = json.loads((out / "labels" / (Path(im["picture"]).stem + ".json")).read_text())
        assert len(per["detections"]) == sum(a["image_id"] == im["id"] for a in doc["annotations"])
    for a in doc["annotations"]:
        im = doc["images"][a["image_id"] - 1]
        x, y, w, h = a["bbox"]
        assert a["score"] >= 0.045 and 0 <= x and 0 <= y and x + w <= im["width"] + 1e-3 and y + h <= im["height"] + 1e-3
    res = _load_res(doc)
    assert len(res.getAnnIds()) == len(doc["annotations"])
    assert "4 image(s)" in capsys.readouterr().out


@needs_shared
def test_predict_equals_the_evaluation_inference(checkpoint, tmp_path, one_thread):
    """The CLI's boxes are those of the evaluation's inference on the same picture (no private copy)."""
    from pipeline.detector.checkpoint import load_detector
    from pipeline.evaluation.infer import detect_images
    from pipeline.postprocess import PostprocessConfig

    src = VOC07 / "000005.jpg"
    assert main(["--checkpoint", str(checkpoint), "--source", str(src), "--out", str(tmp_path), "--method", "nms",
                 "--score", "0", "--max-det", "50", "--no-pictures", "--quiet"]) == 0
    anns = json.loads((tmp_path / "detections.json").read_text())["annotations"]
    model = load_detector(checkpoint)[0]
    ((_, dets),) = detect_images(model, [(0, read_image(src))], {"nms": PostprocessConfig(top_k=50)}, device="cpu")
    d = dets["nms"]
    assert len(anns) == len(d) == 50
    got = np.array([a["bbox"] for a in anns])
    want = torch.cat([d.boxes[:, :2], d.boxes[:, 2:] - d.boxes[:, :2]], 1).numpy()
    assert np.allclose(got, want, atol=2e-3)
    assert [a["category_id"] - 1 for a in anns] == d.labels.tolist()


@needs_shared
def test_folder_with_a_corrupt_jpeg_finishes_lists_it_and_fails_only_with_strict(checkpoint, tmp_path, capsys,
                                                                                  monkeypatch):
    src = tmp_path / "photos"
    src.mkdir()
    shutil.copy(VOC07 / "000005.jpg", src / "a.jpg")
    good = (VOC07 / "000001.jpg").read_bytes()
    (src / "b_truncated.jpg").write_bytes(good[: len(good) // 3])
    (src / "notes.txt").write_text("not an image suffix: not collected")
    args = ["sod-predict", "--checkpoint", str(checkpoint), "--source", str(src), "--method", "nms", "--quiet",
            "--no-pictures"]
    for extra, code in (([], 0), (["--strict"], 1)):  # through the console-script entry point
        monkeypatch.setattr(sys, "argv", [*args, "--out", str(tmp_path / f"o{code}"), *extra])
        with pytest.raises(SystemExit) as exit_:
            cli()
        err = capsys.readouterr().err
        assert exit_.value.code == code
        assert "b_truncated.jpg" in err and "cannot decode image" in err and "Traceback" not in err
        assert "skipped 1 unreadable image(s)" in err
        doc = json.loads((tmp_path / f"o{code}" / "detections.json").read_text())
        assert [Path(im["file_name"]).name for im in doc["images"]] == ["a.jpg"]


@needs_shared
def test_sliced_prediction_on_a_large_picture_batches_and_maps_to_it(checkpoint, tmp_path, one_thread):
    big = np.concatenate([read_image(VOC07 / "000005.jpg")] * 2, axis=1)  # 1000 x 375
    write_image(tmp_path / "wide.png", big)
    out = tmp_path / "o"
    assert main(["--checkpoint", str(checkpoint), "--source", str(tmp_path / "wide.png"), "--out", str(out),
                 "--method", "nms", "--slice", "300", "--overlap", "0.2", "--full-image", "--batch-size", "16",
                 "--score", "0", "--max-det", "1000", "--quiet"]) == 0
    doc = json.loads((out / "detections.json").read_text())
    assert doc["info"]["slice"]["size"] == 300 and doc["info"]["slice"]["full_image"] is True
    boxes = np.array([a["bbox"] for a in doc["annotations"]])
    assert len(boxes) > 200  # 8 windows + the whole image, each up to 300 before merging
    assert boxes[:, 0].max() > 600 and (boxes[:, 0] + boxes[:, 2]).max() <= 1000 + 1e-3  # right half reached
    assert read_image(out / "wide.jpg").shape == (375, 1000, 3)


@needs_shared
def test_sr_bicubic_detects_on_the_upscaled_picture_and_reports_input_pixels(checkpoint, tmp_path, one_thread):
    lr = read_image(VOC07 / "000001.jpg")[::4, ::4]  # 89 x 125 "low-resolution" input
    write_image(tmp_path / "lr.png", np.ascontiguousarray(lr))
    out = tmp_path / "o"
    assert main(["--checkpoint", str(checkpoint), "--source", str(tmp_path / "lr.png"), "--out", str(out),
                 "--method", "nms", "--sr", "bicubic", "--score", "0", "--quiet"]) == 0
    doc = json.loads((out / "detections.json").read_text())
    (im,) = doc["images"]
    assert (im["width"], im["height"]) == (lr.shape[1], lr.shape[0])
    assert read_image(out / "lr.jpg").shape == (4 * lr.shape[0], 4 * lr.shape[1], 3)  # drawn on the SR picture
    boxes = np.array([a["bbox"] for a in doc["annotations"]])
    assert (boxes[:, 0] + boxes[:, 2]).max() <= lr.shape[1] + 1e-3 and (boxes[:, 0] + boxes[:, 2]).max() > 0.5 * lr.shape[1]


def test_sr_generator_file_super_resolves_with_the_sr_stage(checkpoint, tmp_path, one_thread):
    from pipeline.sr.models import build_generator

    gen = build_generator(num_feat=8, num_block=1, scale=2)
    torch.save({"params": gen.state_dict()}, tmp_path / "g.pth")
    img = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    write_image(tmp_path / "x.png", img)
    out = tmp_path / "o"
    assert main(["--checkpoint", str(checkpoint), "--source", str(tmp_path / "x.png"), "--out", str(out),
                 "--method", "nms", "--sr", str(tmp_path / "g.pth"), "--quiet"]) == 0
    assert read_image(out / "x.jpg").shape == (120, 160, 3)  # the generator's x2
    assert json.loads((out / "detections.json").read_text())["info"]["sr"].endswith("g.pth")


def test_checkpoint_without_class_names_is_one_clear_error(tmp_path):
    from pipeline.errors import PipelineError

    save_detector(tmp_path / "m.pt", tiny_detector(2), {})
    write_image(tmp_path / "x.png", np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(PipelineError, match=r"m\.pt: the checkpoint records no class names"):
        main(["--checkpoint", str(tmp_path / "m.pt"), "--source", str(tmp_path / "x.png"), "--out", str(tmp_path / "o")])


@needs_shared
def test_the_score_floor_comes_before_the_tile_merge(checkpoint, tmp_path, one_thread):
    """``--score`` applies before NMS and the merge across tiles (SAHI's order): the same boxes as filtering
    afterwards for ``nms``; for ``greedy`` no kept box grows into a low-score neighbour."""
    from pipeline.detector.checkpoint import load_detector
    from pipeline.evaluation.infer import detect_images
    from pipeline.postprocess import PostprocessConfig
    from pipeline.slicing import SliceConfig

    big = np.concatenate([read_image(VOC07 / "000005.jpg")] * 2, axis=1)  # 1000 x 375: 8 windows of 300 px
    write_image(tmp_path / "wide.png", big)
    model = load_detector(checkpoint)[0]
    post = PostprocessConfig(method="nms", top_k=1000)

    def merged_then_floored(merge: str, floor: float) -> np.ndarray:
        ((_, dets),) = detect_images(model, [(0, read_image(tmp_path / "wide.png"))], {"x": post}, 16, "cpu",
                                     SliceConfig(300, 0.2, merge))
        d = dets["x"]
        keep = d.scores >= floor
        return np.sort(torch.cat([d.boxes[keep], d.scores[keep, None]], 1).numpy(), axis=0)

    def cli_boxes(merge: str, floor: float) -> np.ndarray:
        out = tmp_path / merge
        assert main(["--checkpoint", str(checkpoint), "--source", str(tmp_path / "wide.png"), "--out", str(out),
                     "--method", "nms", "--slice", "300", "--merge", merge, "--score", repr(floor), "--max-det",
                     "1000", "--no-pictures", "--quiet"]) == 0
        anns = json.loads((out / "detections.json").read_text())["annotations"]
        xyxy = [[x, y, x + w, y + h, a["score"]] for a in anns for x, y, w, h in [a["bbox"]]]
        return np.sort(np.array(xyxy), axis=0)

    all_scores = merged_then_floored("nms", 0.0)[:, 4]
    floor = float(np.median(all_scores))  # half the merged boxes below the floor
    nms_cli = cli_boxes("nms", floor)
    assert len(nms_cli) > 10 and np.allclose(nms_cli, merged_then_floored("nms", floor), atol=2e-3)
    greedy_cli, greedy_after = cli_boxes("greedy", floor), merged_then_floored("greedy", floor)
    assert greedy_cli[:, 4].min() >= floor - 1e-6
    # merged after the floor, the boxes differ: low-score boxes would have grown the kept ones
    assert greedy_cli.shape != greedy_after.shape or not np.allclose(greedy_cli, greedy_after, atol=2e-3)
    areas = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    assert areas(greedy_cli).mean() < areas(greedy_after).mean()
