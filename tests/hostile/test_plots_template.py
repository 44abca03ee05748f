"""scripts/plots_template.py on bad inputs: a bundle it cannot inline, a folder that is not a DVC repo."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import PipelineError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "plots_template.py"
spec = importlib.util.spec_from_file_location("plots_template", SCRIPT)
plots_template = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plots_template)


@pytest.mark.parametrize("bundle,fragment", [
    ("var a = '{plot_divs}';", "contains DVC placeholder {plot_divs}"),
    ("var a = '{refresh_tag}';", "contains DVC placeholder {refresh_tag}"),
    ("var a = '</SCRIPT>';", "contains '</script'"),
])
def test_a_bundle_that_cannot_be_inlined_is_refused(bundle, fragment):
    with pytest.raises(PipelineError, match=fragment.replace("{", r"\{").replace("}", r"\}")):
        plots_template.render_page(bundle, "stamp")


def test_the_page_keeps_dvcs_placeholders_but_not_its_cdn_scripts():
    page = plots_template.render_page("window.vegaEmbed = 1;", "stamp line")
    assert page.startswith("<!DOCTYPE html>\n<!-- stamp line -->\n")
    assert "{plot_divs}" in page and "{refresh_tag}" in page and "{scripts}" not in page
    assert "window.vegaEmbed = 1;" in page


def test_an_old_or_foreign_template_is_not_up_to_date(tmp_path):
    path = tmp_path / "t.html"
    assert not plots_template.up_to_date(path, "s")  # absent
    path.write_text(plots_template.render_page("x", "old versions"))
    assert not plots_template.up_to_date(path, "new versions")
    assert plots_template.up_to_date(path, "old versions")
    path.write_bytes(b"\xff\xfe")
    assert not plots_template.up_to_date(path, "old versions")


def test_a_folder_that_is_not_a_dvc_repo_is_one_line_and_left_untouched(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--repo", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"error: {tmp_path}: not a DVC repository (no .dvc folder)\n"
    assert list(tmp_path.iterdir()) == []
