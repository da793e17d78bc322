"""The explorer page of `gankit serve` in a real headless browser: it loads without console
errors and asks nothing of any other server, the two runs show side by side (and the one that
failed to load is named), a slider, the truncation slider and the class picker change the
picture, two picked tiles give an interpolation, and the download is the PNG. Skipped, with the
reason, where Chromium or Playwright's Python package is missing (CI installs both)."""

from __future__ import annotations

import io
import shutil
import threading

import pytest
from PIL import Image

from gankit.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")

# What a sandboxed, offline machine needs: no sandbox (root), no GPU, no calls home (as the report's test).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000  # every wait has an end: a broken page fails the test instead of hanging it
TINY = ["--steps", "2", "--width", "8", "--batch-size", "16", "--sample-grid", "16", "--checkpoint-every", "2",
        "--tensorboard", "off"]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """A server on a free port for a conditional run, a run that does not exist and an mlp run;
    shut down when the module's tests are done."""
    from gankit.serve.explorer import load_explorer
    from gankit.serve.server import address, make_server

    root = tmp_path_factory.mktemp("explorer")
    assert main(["train", "-q", "--out", str(root / "cond"), *TINY]) == 0
    assert main(["train", "-q", "--out", str(root / "mlp"), "--preset", "mlp-gan", "--dataset", "mnist-5k",
                 "--g-widths", "16,32", "--d-widths", "32,16", *TINY]) == 0
    explorer = load_explorer([str(root / "cond"), str(root / "no-such-run"), str(root / "mlp")], device="cpu")
    server = make_server(explorer, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield address(server)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture()
def page(base_url):
    """A page of the explorer, every grid drawn; after the test, no console error and no request
    to anywhere but the local server."""
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, timeout=WAIT_MS)
        tab = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        tab.set_default_timeout(WAIT_MS)
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: problems.append(str(e)))
        tab.on("request", lambda r: None if r.url.startswith((base_url, "data:")) else problems.append(f"request {r.url}"))
        tab.goto(base_url)
        wait_for_grids(tab)
        yield tab
        browser.close()
    assert problems == []


def wait_for_grids(tab, old: list[str] | None = None) -> None:
    """Until every grid is decoded and, given the `old` srcs, at least one of them has changed
    (a class asked for redraws only the conditional generators)."""
    tab.wait_for_function(
        """old => { const imgs = [...document.querySelectorAll('img.grid')];
                    return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)
                           && (!old || imgs.some((i, k) => i.src !== old[k])); }""", arg=old, timeout=WAIT_MS)


def grid_srcs(tab) -> list[str]:
    return tab.eval_on_selector_all("img.grid", "imgs => imgs.map(i => i.src)")


def shot(tab, k: int = 0) -> bytes:
    return tab.locator("img.grid").nth(k).screenshot()


def test_two_runs_side_by_side_and_the_failed_one_named(page):
    panels = page.locator(".panel:not(.failed) img.grid")
    assert panels.count() == 2
    a, b = panels.nth(0).bounding_box(), panels.nth(1).bounding_box()
    assert abs(a["y"] - b["y"]) < 1 and b["x"] > a["x"] + a["width"]  # in one row, not stacked
    failed = page.locator(".panel.failed")
    assert failed.count() == 1 and "no-such-run" in failed.inner_text() and "failed to load" in failed.inner_text()
    srcs = grid_srcs(page)
    assert all("seed=0" in s for s in srcs)  # the same latents for both
    assert page.locator("#sliders input[type=range]").count() == 8


def test_moving_a_slider_changes_the_picture(page):
    before, srcs = shot(page), grid_srcs(page)
    page.eval_on_selector("#sliders input[data-direction='0']",
                          "el => { el.value = 2.5; el.dispatchEvent(new Event('input')); }")
    wait_for_grids(page, srcs)
    assert "d=2.5" in grid_srcs(page)[0] and shot(page) != before
    srcs, before = grid_srcs(page), shot(page)
    page.eval_on_selector("#psi", "el => { el.value = 0.3; el.dispatchEvent(new Event('input')); }")
    wait_for_grids(page, srcs)
    assert "psi=0.3" in grid_srcs(page)[0] and shot(page) != before


def test_the_class_picker_draws_that_class(page):
    assert page.locator("#class-label").is_visible()
    before, srcs = shot(page), grid_srcs(page)
    page.select_option("#class", "3")
    wait_for_grids(page, srcs)
    cond, mlp = grid_srcs(page)
    assert "class=3" in cond and "class=-1" in mlp  # the unconditional G ignores it
    assert shot(page) != before


def test_two_picked_tiles_give_an_interpolation(page):
    grid = page.locator("img.grid").first
    box = grid.bounding_box()
    grid.click(position={"x": 10, "y": 10})
    grid.click(position={"x": box["width"] - 10, "y": box["height"] - 10})
    page.wait_for_function("""() => { const w = [...document.querySelectorAll('img.interpolation')];
                              return w.length === 2 && w.every(i => !i.hidden && i.complete && i.naturalWidth > 0); }""",
                           timeout=WAIT_MS)
    assert "a=0&b=15" in page.locator("img.interpolation").first.get_attribute("src")


def test_download_gives_the_png(page):
    with page.expect_download(timeout=WAIT_MS) as info:
        page.locator("a.download").first.click()
    download = info.value
    assert download.suggested_filename.endswith(".png")
    picture = Image.open(io.BytesIO(open(download.path(), "rb").read()))
    natural = page.eval_on_selector("img.grid", "i => [i.naturalWidth, i.naturalHeight]")
    assert picture.format == "PNG" and list(picture.size) == natural
