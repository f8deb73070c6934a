"""The batch report page as a browser shows it: headless Chromium loads it and measures it.

Checked: every embedded figure decodes; the page leads with the figures; nothing is
wider than a 1280-pixel window; the small-groups caution is there. A screenshot of the
page is saved in the test's folder (its path is printed). Needs Debian's ``chromium``
package (``.ci/run`` installs it); without it the test is skipped, and says so.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = next(
    (
        path
        for name in ("chromium", "chromium-browser", "google-chrome")
        if (path := shutil.which(name))
    ),
    None,
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
)
WIDTH = 1280

#: Run when the page has loaded; leaves its measurements on <body data-check="...">.
_CHECK = """
<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const top = (selector) => document.querySelector(selector).getBoundingClientRect().top;
  document.body.setAttribute("data-check", JSON.stringify({
    images: images.length,
    decoded: images.filter((image) => image.complete && image.naturalWidth > 0).length,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    firstFigure: top("figure"),
    firstTable: top("table"),
    caution: document.querySelector(".caution") !== null,
    folded: document.querySelectorAll("details").length,
  }));
});
</script>
"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (Debian: apt-get install chromium):"
    " the report page is not checked in a browser",
)


@pytest.fixture
def report(two_factor_report: Path) -> Path:
    return two_factor_report


def _chromium(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, *FLAGS, *arguments], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_page_loads_leads_with_figures_and_fits_the_window(report, tmp_path):
    page = (report / "report.html").read_text()
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", _CHECK + "</body>"))
    done = _chromium(
        "--dump-dom",
        "--virtual-time-budget=10000",
        f"--window-size={WIDTH},1000",
        checked.as_uri(),
    )
    match = re.search(r'data-check="([^"]*)"', done.stdout)
    assert match, f"Chromium gave no measurement: {done.stderr[-2000:]}"
    check = json.loads(html.unescape(match.group(1)))
    assert check["images"] == 3 and check["decoded"] == 3
    assert check["firstFigure"] < check["firstTable"]
    assert check["overflow"] <= 0, f"the page is {check['overflow']} px wider than the window"
    assert check["caution"] and check["folded"] == 1


def test_a_screenshot_of_the_page(report, tmp_path):
    screenshot = tmp_path / "report.png"
    done = _chromium(
        f"--screenshot={screenshot}",
        f"--window-size={WIDTH},2400",
        (report / "report.html").as_uri(),
    )
    assert screenshot.is_file(), done.stderr[-2000:]
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG") and int.from_bytes(data[16:20], "big") == WIDTH
    print(f"screenshot of the report page: {screenshot}")
