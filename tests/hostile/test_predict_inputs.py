"""Hostile inputs to ``python -m pipeline.predict``: each is one clear line naming the input, or handled."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.config import ConfigError
from pipeline.errors import PipelineError
from pipeline.predict import main
from tests.predict.conftest import tiny_detector

CLASSES = ["disc", "ring", "square"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from pipeline.detector.checkpoint import save_detector

    path = tmp_path_factory.mktemp("hostile_predict") / "model.pt"
    save_detector(path, tiny_detector(len(CLASSES)), {"classes": CLASSES})
    return path


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "in" / "p.png"
    path.parent.mkdir()
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(path)
    return path


def run(ckpt, source, out, *extra: str) -> int:
    return main(["--checkpoint", str(ckpt), "--source", *map(str, source), "--out", str(out), "--method", "nms",
                 "--quiet", "--score", "0", "--max-det", "5", *extra])


def one_line(exc: pytest.ExceptionInfo) -> str:
    """The message as the CLI prints it (pipeline.cli.run_cli joins it to one ``error:`` line)."""
    assert isinstance(exc.value, PipelineError)  # so run_cli prints it without a traceback, exit 2
    return " ".join(str(exc.value).split())


@pytest.mark.parametrize(("flags", "key"), [
    (["--score", "1.5"], "--score"),
    (["--batch-size", "0"], "--batch-size"),
    (["--slice", "8"], "--slice"),
    (["--slice", "300", "--overlap", "1.0"], "--overlap"),
    (["--full-image"], "--full-image"),
    (["--device", "cuda:7"], "--device"),
    (["--device", "tpu"], "--device"),
    (["--iou", "0"], "--method.iou_threshold"),
])
def test_bad_flags_name_the_flag(ckpt, photo, tmp_path, flags, key):
    if "cuda" in flags[-1] and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(ConfigError) as exc:
        main(["--checkpoint", str(ckpt), "--source", str(photo), "--out", str(tmp_path / "o"), *flags])
    assert one_line(exc).startswith(key)


def test_missing_and_foreign_checkpoints(photo, tmp_path):
    with pytest.raises(PipelineError, match="checkpoint not found"):
        run(tmp_path / "nope.pt", [photo], tmp_path / "o")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(PipelineError) as exc:
        run(tmp_path / "junk.pt", [photo], tmp_path / "o")
    assert "junk.pt" in one_line(exc)
    # An old checkpoint without the model config (a bare state dict under 'state_dict').
    torch.save({"format": 1, "num_classes": 3, "state_dict": tiny_detector(3).state_dict()}, tmp_path / "old.pt")
    with pytest.raises(PipelineError) as exc:
        run(tmp_path / "old.pt", [photo], tmp_path / "o")
    assert "old.pt" in one_line(exc) and "config" in str(exc.value)
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are checked


def test_bad_sources_are_one_line(ckpt, tmp_path):
    with pytest.raises(PipelineError, match="no such file or folder"):
        run(ckpt, [tmp_path / "absent.jpg"], tmp_path / "o")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(PipelineError, match="folder holds no image files"):
        run(ckpt, [tmp_path / "empty"], tmp_path / "o")
    with pytest.raises(PipelineError, match="matches no files"):
        run(ckpt, [str(tmp_path / "*.jpg")], tmp_path / "o")


def test_out_that_is_a_file(ckpt, photo, tmp_path):
    (tmp_path / "o").write_text("a file")
    with pytest.raises(PipelineError, match="exists and is not a folder"):
        run(ckpt, [photo], tmp_path / "o")


def test_sr_generator_that_is_not_one(ckpt, photo, tmp_path):
    with pytest.raises(PipelineError, match="no such generator file"):
        run(ckpt, [photo], tmp_path / "o", "--sr", str(tmp_path / "g.pth"))
    (tmp_path / "g.pth").write_bytes(b"\x00" * 10)
    with pytest.raises(PipelineError) as exc:
        run(ckpt, [photo], tmp_path / "o", "--sr", str(tmp_path / "g.pth"))
    assert "g.pth" in one_line(exc)


def test_odd_but_valid_images_are_handled(ckpt, tmp_path, capsys):
    """Grey, RGBA, palette and 16-bit PNGs, a 1x1 image, a BMP, a .JPG suffix: all decoded and detected."""
    src = tmp_path / "odd"
    src.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((40, 50)) * 255).astype(np.uint8), "L").save(src / "grey.png")
    Image.fromarray((rng.random((40, 50, 4)) * 255).astype(np.uint8), "RGBA").save(src / "rgba.png")
    Image.fromarray((rng.random((40, 50, 3)) * 255).astype(np.uint8)).convert("P").save(src / "pal.png")
    Image.fromarray((rng.random((40, 50)) * 65535).astype(np.uint16)).save(src / "deep16.png")
    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(src / "dot.bmp")
    Image.fromarray((rng.random((30, 30, 3)) * 255).astype(np.uint8)).save(src / "UPPER.JPG")
    assert run(ckpt, [src], tmp_path / "o") == 0
    doc = json.loads((tmp_path / "o" / "detections.json").read_text())
    assert sorted(im["picture"] for im in doc["images"]) == sorted(
        ["grey.jpg", "rgba.jpg", "pal.jpg", "deep16.jpg", "dot.jpg", "UPPER.jpg"])
    for a in doc["annotations"]:
        im = doc["images"][a["image_id"] - 1]
        assert a["bbox"][0] + a["bbox"][2] <= im["width"] + 1e-3
    assert "skipped" not in capsys.readouterr().err


def test_unreadable_files_are_listed_and_skipped(ckpt, photo, tmp_path, capsys):
    src = photo.parent
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.png").write_text("hello")
    Image.new("RGB", (20, 20)).save(src / "trunc.jpg")
    (src / "trunc.jpg").write_bytes((src / "trunc.jpg").read_bytes()[:100])
    (src / "dir.jpg").mkdir()  # a folder named like an image: not a file, not collected
    assert run(ckpt, [src], tmp_path / "o") == 0
    err = capsys.readouterr().err
    assert "skipped 3 unreadable image(s)" in err
    for name in ("empty.jpg", "text.png", "trunc.jpg"):
        assert sum(name in line for line in err.splitlines()) == 2  # once when met, once in the summary
    doc = json.loads((tmp_path / "o" / "detections.json").read_text())
    assert [im["picture"] for im in doc["images"]] == ["p.jpg"]
    assert run(ckpt, [src], tmp_path / "o2", "--strict") == 1


def test_same_names_from_different_folders_and_hostile_names_stay_inside_out(ckpt, photo, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "p.png").write_bytes(photo.read_bytes())
    (other / "..evil name;$(x).png").write_bytes(photo.read_bytes())
    out = tmp_path / "o"
    evil = other / "..evil name;$(x).png"  # named directly: a glob skips dot files, as a shell does
    assert run(ckpt, [photo, other / "p.png", evil, str(other / "*.png"), photo], out, "--per-image") == 0
    doc = json.loads((out / "detections.json").read_text())
    pics = [im["picture"] for im in doc["images"]]
    assert pics == ["p.jpg", "p_2.jpg", "evil_name___x_.jpg"]  # the repeated sources are taken once
    assert {p.name for p in out.iterdir() if p.is_file()} == {*pics, "detections.json"}
    assert all(p.parent == out / "labels" for p in (out / "labels").iterdir())
