"""Render a ``dvc plots show`` page in headless Chromium with the network off and report its Vega views.

Chromium comes from the system (scripts/bootstrap.sh installs Debian's
``chromium-headless-shell`` where apt-get runs as root); :func:`chromium` is None without it.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROBE = Path(__file__).with_name("vega_probe.html")
NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
# No name resolves and every request goes to a closed local port: nothing leaves the machine.
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9"]


def chromium() -> str | None:
    """Path of a headless-capable Chromium on PATH, or None."""
    return next((p for p in map(shutil.which, NAMES) if p), None)


@dataclass
class Rendered:
    calls: int  # vegaEmbed calls the page made
    views: list[dict]  # per rendered view: element id, drawn data items, canvas size
    errors: list[str]  # script errors and rejected embeds

    @property
    def drawn(self) -> list[str]:
        """Element ids of the views that drew at least one data item on a non-empty canvas."""
        return [v["el"] for v in self.views if v["items"] > 0 and v["width"] > 0 and v["height"] > 0]


def render(index_html: Path, profile: Path, timeout: float = 180) -> Rendered:
    """Load ``index_html`` (plus the probe, in a sibling copy so relative image paths hold) offline."""
    page = index_html.read_text(encoding="utf8")
    at = page.rfind("</head>")  # the page's own </head>: inlined scripts may contain the string too
    assert at > 0, f"{index_html}: no </head>"
    probed = index_html.with_name("probe_" + index_html.name)
    probed.write_text(page[:at] + PROBE.read_text() + page[at:], encoding="utf8")
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", *OFFLINE,
           f"--user-data-dir={profile}", "--virtual-time-budget=60000", "--dump-dom", probed.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    found = re.search(r'<pre id="probe">([^<]*)</pre>', proc.stdout)
    assert found, f"no probe output (exit {proc.returncode}); stderr tail:\n{proc.stderr[-3000:]}"
    data = json.loads(html.unescape(found.group(1)))
    return Rendered(data["calls"], data["views"], data["errors"])
