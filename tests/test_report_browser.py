"""The HTML report in a real headless browser: it loads with no console errors, its images and
plots are present, and the sample slider works. Skipped, with the reason, where Chromium or
Playwright's Python package is missing (CI installs both)."""

import shutil
from pathlib import Path

import pytest
from PIL import Image

from gankit.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")

# What a sandboxed, offline machine needs: no sandbox (root), no GPU, no calls home.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from gankit.run.report import write_report
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["train", "-q", "--out", str(out), "--steps", "40", "--width", "8", "--batch-size", "16",
                 "--log-every", "5", "--sample-every", "10", "--sample-every-early", "5", "--checkpoint-every", "20",
                 "--eval-every", "20", "--eval-n", "200", "--sample-grid", "16"]) == 0
    return Path(write_report(out))


def test_report_renders_without_errors_and_the_slider_moves(report, tmp_path):
    problems = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: problems.append(f"request {r.url}") if not r.url.startswith(("file:", "data:"))
                else None)
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        svgs = page.evaluate("document.querySelectorAll('svg').length")
        assert len(widths) + svgs >= 3 and all(w > 0 for w in widths), widths  # grids and plots all decoded
        slider = page.query_selector("input[type=range]")
        assert slider is not None
        before = page.evaluate("Array.from(document.images).map(i => i.src)")
        page.eval_on_selector("input[type=range]", "el => { el.value = el.min; el.dispatchEvent(new Event('input')); }")
        after = page.evaluate("Array.from(document.images).map(i => i.src)")
        assert before != after  # moving the slider shows another step's grid
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert problems == []
    image = Image.open(shot).convert("RGB")
    assert image.size[1] > 900 and len(image.getcolors(1 << 20) or range(1000)) > 50  # a real page, not blank
