import json
import math
import shutil

import pyarrow.parquet as pq
import pytest
import torch

from pipeline.data.images import ImageError, read_image
from pipeline.data.schema import images_dir, read_records, table_path
from pipeline.sr.config import SRInferConfig
from pipeline.sr.models import build_generator
from pipeline.sr.pairs import SetMismatchError
from pipeline.sr.sets import make_sr_sets
from tests.sr.conftest import degrade_set, rec


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "generator.pth"
    torch.save({"params": build_generator(8, 1).state_dict()}, path)
    return path


def _run(lr, hr, model, tmp_path, **cfg):
    return make_sr_sets(lr, hr, {"sr": (model, tmp_path / "sr")}, tmp_path / "bic", tmp_path / "m.json",
                        tmp_path / "f.png", SRInferConfig(tile=24, tile_overlap=8, **cfg), device="cpu")


def test_sr_and_bicubic_sets_have_hr_sizes_and_table(synthetic_pair, model_path, tmp_path):
    hr, lr = synthetic_pair
    report = _run(lr, hr, model_path, tmp_path)
    hr_recs, _ = read_records(hr)
    for out in ("sr", "bic"):
        recs, classes = read_records(tmp_path / out)
        assert classes == ["cat", "bottle"]
        got, want = pq.read_table(table_path(tmp_path / out)), pq.read_table(table_path(hr))
        assert got.schema.equals(want.schema, check_metadata=True)
        assert repr(got.to_pydict()) == repr(want.to_pydict())  # repr: NaN boxes compare equal
        for r in recs:
            assert read_image(images_dir(tmp_path / out) / r.file_name).shape == (r.height, r.width, 3)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["images"] == 2 and metrics["split"] == "test"
    assert set(metrics) >= {"sr", "bicubic"} and 0 < metrics["bicubic"]["ssim"] <= 1
    assert math.isfinite(report.sr_psnr) and report.bicubic_psnr > 10
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_only_requested_splits_are_written(synthetic_pair, model_path, tmp_path):
    hr, lr = synthetic_pair
    _run(lr, hr, model_path, tmp_path, splits=["test"])
    recs, _ = read_records(tmp_path / "sr")
    assert sorted(r.image_id for r in recs) == ["c", "d"]


def test_missing_lr_image_names_the_file_and_writes_nothing(synthetic_pair, model_path, tmp_path):
    hr, lr = synthetic_pair
    (images_dir(lr) / "c.png").unlink()
    with pytest.raises(ImageError, match=r"c\.png: image file not found"):
        _run(lr, hr, model_path, tmp_path)
    assert not (tmp_path / "sr").exists() and not (tmp_path / "bic").exists() and not (tmp_path / "m.json").exists()


def test_lr_table_not_matching_hr_is_a_clear_error(synthetic_pair, model_path, make_set, tmp_path):
    hr, _ = synthetic_pair
    other = make_set([rec("a", "train", 130, 98), rec("zz", "test", 64, 64)], ["cat", "bottle"], name="hr2")
    lr_other = degrade_set(other, tmp_path / "lr2")
    with pytest.raises(SetMismatchError, match="annotations.parquet.*(missing from the LR set|not in the HR set)"):
        _run(lr_other, hr, model_path, tmp_path)
    # same images but LR made at the wrong scale
    lr_x2 = degrade_set(hr, tmp_path / "lr_x2", scale=2)
    with pytest.raises(SetMismatchError, match=r"expected 33x25 for 130x98 HR at x4"):
        _run(lr_x2, hr, model_path, tmp_path)


def test_corrupt_model_is_a_clear_error(synthetic_pair, tmp_path):
    hr, lr = synthetic_pair
    bad = tmp_path / "generator.pth"
    bad.write_text("oops")
    with pytest.raises(ValueError, match="generator.pth: not a readable PyTorch weights file"):
        _run(lr, hr, bad, tmp_path)


def test_stage_cli_end_to_end(synthetic_pair, tmp_path, monkeypatch):
    from stages import sr_infer, sr_train

    hr, lr = synthetic_pair
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1\nsr:\n  model: {num_feat: 8, num_block: 1}\n"
                      "  train: {pretrain_iters: 3, patch_size: 8, batch_size: 2, checkpoint_every: 2, log_every: 1}\n"
                      "  infer: {tile: 32, tile_overlap: 8}\n")
    sr_train.main(["--hr", str(hr), "--lr", str(lr), "--out", str(tmp_path / "model"), "--params", str(params)])
    assert (tmp_path / "model" / "generator.pth").is_file()
    assert (tmp_path / "model" / "checkpoints" / "last.pth").is_file()
    assert len((tmp_path / "model" / "loss_log.csv").read_text().splitlines()) == 1 + 3
    sr_infer.main(["--lr", str(lr), "--hr", str(hr), "--model", str(tmp_path / "model" / "generator.pth"),
                   "--sr-out", str(tmp_path / "sr"), "--bicubic-out", str(tmp_path / "bic"),
                   "--metrics", str(tmp_path / "q.json"), "--figure", str(tmp_path / "fig.png"),
                   "--params", str(params)])
    assert json.loads((tmp_path / "q.json").read_text())["images"] == 2
    shutil.rmtree(tmp_path / "sr")
