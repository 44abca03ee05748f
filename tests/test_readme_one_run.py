"""scripts/readme_one_run.py: the README's 'One run' tables are copied from a report.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "readme_one_run.py"

REPORT = """# Evaluation results

## Headline (summary.json)

| set | mAP |
|:---|---:|
| hr | 0.7313 |

## Sets × methods

**map**: VOC mAP@0.5, all-point

| set | nms |
|:---|---:|
| hr | 0.7313 |

**coco_ap**: COCO AP@[.5:.95]

| set | nms |
|:---|---:|
| hr | 0.4100 |

## Intervals

| set | mAP@0.5 |
|:---|---:|
| hr | 0.7313 [0.68, 0.78] |

## Small objects

not copied

## Super-resolution quality

SR - bicubic: +1.105 dB

## Training

| steps | 1200 |

## Glossary

not copied
"""


def _run(report: Path, readme: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(report), str(readme)], capture_output=True, text=True)


def test_replaces_the_tables_and_keeps_the_prose(tmp_path):
    report = tmp_path / "report.md"
    report.write_text(REPORT)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n\n#### Headline (summary.json)\n\nold table\n\n**Reading it.** Every difference below: prose\n")
    assert _run(report, readme).returncode == 0
    text = readme.read_text()
    assert text.startswith("intro\n\n#### Headline (summary.json)\n")
    assert text.endswith("**Reading it.** Every difference below: prose\n")
    assert "old table" not in text
    assert "#### Sets × methods" in text and "0.7313 [0.68, 0.78]" in text and "#### Training" in text
    assert "coco_ap" not in text and "Small objects" not in text and "Glossary" not in text


def test_a_report_without_a_section_is_refused_and_the_readme_kept(tmp_path):
    report = tmp_path / "report.md"
    report.write_text(REPORT.replace("## Training", "## Something else"))
    readme = tmp_path / "README.md"
    original = "#### Headline (summary.json)\n\nold\n\n**Reading it.** Every difference below\n"
    readme.write_text(original)
    result = _run(report, readme)
    assert result.returncode != 0 and "Training" in result.stderr
    assert readme.read_text() == original
