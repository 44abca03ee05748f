"""Bad curve tables (training TSVs, PR CSVs) are one-line errors naming the file (and line)."""

from __future__ import annotations

import pytest

from pipeline.curves import CurveError, pr_overlay, training_curves
from pipeline.errors import PipelineError

GOOD_LOSS = "timestamp\tstep\tloss\n1.0\t0\t5.0\n2.0\t5\t4.0\n"

# (case, loss.tsv bytes or None for absent, expected message fragment after the path)
LOSS_CASES = [
    ("absent", None, "loss.tsv: file not found"),
    ("empty", b"", "loss.tsv: no data rows"),
    ("header-only", b"timestamp\tstep\tloss\n", "loss.tsv: no data rows"),
    ("ragged-row", b"timestamp\tstep\tloss\n1\t0\t5\n2\t5\n", "loss.tsv:3: 2 fields, the header has 3"),
    ("text-value", b"timestamp\tstep\tloss\n1\t0\tfive\n", "loss.tsv:2: not a number in '1\\t0\\tfive'"),
    ("nan-value", b"timestamp\tstep\tloss\n1\t0\tnan\n", "loss.tsv:2: non-finite value"),
    ("inf-value", b"timestamp\tstep\tloss\n1\t0\tinf\n", "loss.tsv:2: non-finite value"),
    ("no-step-column", b"timestamp\titer\tloss\n1\t0\t5\n", "loss.tsv: no 'step' column"),
    ("binary", b"\xff\xfe\x00garbage\x89PNG", "loss.tsv: cannot read"),
    ("nul-byte", b"timestamp\tstep\tloss\n1\t0\t5\x00\n", "loss.tsv:2: not a number in '1\\t0\\t5\\x00'"),
    ("huge-field", b"timestamp\tstep\tloss\n1\t0\t" + b"9" * 200_000 + b"\n",
     "loss.tsv: not a TSV table (field larger than field limit"),
]


@pytest.mark.parametrize("data,fragment", [c[1:] for c in LOSS_CASES], ids=[c[0] for c in LOSS_CASES])
def test_a_bad_loss_table_is_one_error_naming_it(tmp_path, data, fragment):
    train = tmp_path / "dvclive" / "plots" / "metrics" / "train"
    train.mkdir(parents=True)
    if data is not None:
        (train / "loss.tsv").write_bytes(data)
    with pytest.raises(CurveError) as err:
        training_curves(tmp_path / "dvclive", tmp_path / "out.png")
    assert isinstance(err.value, PipelineError) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(train / "loss.tsv")) and fragment in str(err.value)
    assert not (tmp_path / "out.png").exists()


def test_a_bad_optional_part_names_its_own_file(tmp_path):
    train = tmp_path / "dvclive" / "plots" / "metrics" / "train"
    train.mkdir(parents=True)
    (train / "loss.tsv").write_text(GOOD_LOSS)
    (train / "lr.tsv").write_text("timestamp\tstep\tlr\n1\t0\t0.01\n1\tx\t0.01\n")
    with pytest.raises(CurveError, match=r"lr\.tsv:3: not a number"):
        training_curves(tmp_path / "dvclive", tmp_path / "out.png")


def test_a_run_that_logged_only_the_loss_still_gets_its_png(tmp_path):
    train = tmp_path / "dvclive" / "plots" / "metrics" / "train"
    train.mkdir(parents=True)
    (train / "loss.tsv").write_text(GOOD_LOSS)
    training_curves(tmp_path / "dvclive", tmp_path / "out.png")  # no lr/cls/box: handled, not an error
    assert (tmp_path / "out.png").stat().st_size > 0


PR_CASES = [
    ("no-recall-first", "precision,disc\n0.5,0.5\n", "hr_softnms.csv: first column must be 'recall', got 'precision'"),
    ("recall-only", "recall\n0.0\n1.0\n", "hr_softnms.csv: no class columns after 'recall'"),
    ("text-cell", "recall,disc\n0.0,1.0\n0.5,high\n", "hr_softnms.csv:3: not a number"),
    ("semicolons", "recall;disc\n0.0;1.0\n", "hr_softnms.csv:2: not a number in '0.0;1.0'"),
]


@pytest.mark.parametrize("text,fragment", [c[1:] for c in PR_CASES], ids=[c[0] for c in PR_CASES])
def test_a_bad_pr_table_is_one_error_naming_it(tmp_path, text, fragment):
    (tmp_path / "pr").mkdir()
    (tmp_path / "pr" / "hr_softnms.csv").write_text(text)
    with pytest.raises(CurveError) as err:
        pr_overlay(tmp_path / "pr", tmp_path / "o.png", ["disc"])
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_missing_pr_folder_or_method_is_named(tmp_path):
    with pytest.raises(CurveError, match="pr: PR folder not found"):
        pr_overlay(tmp_path / "pr", tmp_path / "o.png", ["disc"])
    (tmp_path / "pr").mkdir()
    (tmp_path / "pr" / "hr_nms.csv").write_text("recall,disc\n0,1\n1,0\n")
    with pytest.raises(CurveError, match=r"no <set>_softnms.csv for sets \['hr', 'sr', 'bicubic', 'lr'\]; "
                                         r"found \['hr_nms.csv'\]"):
        pr_overlay(tmp_path / "pr", tmp_path / "o.png", ["disc"])
    assert not (tmp_path / "o.png").exists()
