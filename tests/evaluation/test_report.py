"""The results report from a real evaluation out dir: sections, glossary, an HTML page that opens offline."""

from __future__ import annotations

import base64
import re

from pipeline.evaluation.matrix import METRIC_KEYS
from pipeline.evaluation.report import build_report, to_html
from pipeline.evaluation.tables import markdown_table


def test_report_has_every_section_and_a_glossary_entry_per_metric(coco_like_eval):
    out, metrics, summary = coco_like_eval
    md = (out / "report.md").read_text()
    assert md == build_report(out)
    for heading in ("## Headline", "## Sets × methods", "## Intervals", "## Small objects", "## Per-class AP",
                    "## Super-resolution quality", "## Training", "## Figures", "## Glossary"):
        assert heading in md, heading
    glossary = md.split("## Glossary", 1)[1]
    for key in METRIC_KEYS:  # every metric name of the matrix is explained
        assert f"`{key}`" in glossary, key
    for key in ("<set>.nms", "<set>.soft", "<set>.small", "psnr_gain", "loss", "img_s"):
        assert f"`{key}`" in glossary, key
    # numbers come from the files: the oracle's perfect mAP, the SR and training inputs
    assert "| hr | 1.0000 | 1.0000 |" in md
    # intervals from bootstrap.json: the oracle is perfect on every resample; HR − LR paired difference 0
    assert "| hr | nms | 1.0000 [1.0000, 1.0000] |" in md.split("## Intervals", 1)[1]
    assert "| HR − LR | map | +0.0000 [+0.0000, +0.0000] |" in md
    assert "| sr | 31.5975 | 0.7196 |" in md and "+0.105 dB" in md
    assert "| img_per_s | 123.4560 |" in md and "| steps | 40 |" in md
    # per-class rows with COCO-like names (space, comma, quotes; the pipe escaped for the table)
    assert "| potted plant |" in md and '| hair "drier", pink\\|x |' in md
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):  # every figure link exists, relative to out
        assert (out / link).is_file(), link
    assert "figures/pr_hr_softnms.png" in md and "figures/pr_hr_nms.png" in md  # the extra figure too


def test_html_is_the_same_content_and_self_contained(coco_like_eval):
    out, _, _ = coco_like_eval
    page = (out / "report.html").read_text()
    assert "<table>" in page and "Glossary" in page and "&lt;set&gt;.nms" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no CDN, nothing fetched
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(srcs) == (out / "report.md").read_text().count("![")
    png = (out / "figures" / "pr_hr_softnms.png").read_bytes()
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in srcs
    assert all(s.startswith("data:image/png;base64,") for s in srcs)


def test_a_missing_figure_stays_a_link_and_cells_cannot_inject_html(tmp_path):
    table = markdown_table(["class", "ap"], [["<script>alert(1)</script>", 0.5], ["a|b & c", None]])
    page = to_html(f"# t\n\n![gone](figures/none.png)\n\n{table}\n", tmp_path)
    assert 'src="figures/none.png"' in page  # left as is (not embedded, no crash)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert ">a|b &amp; c</td>" in page and ">-</td>" in page  # one cell; undefined is "-"
