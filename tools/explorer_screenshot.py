"""Screenshot of the `gankit serve` page for the README: serve the runs given on a free port,
open the page in headless Chromium, move the first slider and pick two tiles, save a PNG.

    python tools/explorer_screenshot.py runs/explore runs/explore-uncond --out docs/img/explorer.png

Needs Playwright's Python package and a `chromium` on PATH (as the browser tests do).
"""

from __future__ import annotations

import argparse
import shutil
import threading

from gankit.serve.explorer import load_explorer
from gankit.serve.server import address, make_server

# As the browser tests launch it: no sandbox, no GPU, no calls home.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=760)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server = make_server(load_explorer(args.targets, device="cpu"), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.set_default_timeout(WAIT_MS)
            page.goto(address(server))
            page.wait_for_selector("img.grid")
            page.fill("#seed", str(args.seed))
            page.dispatch_event("#seed", "change")
            page.eval_on_selector("#sliders input[data-direction='0']",
                                  "el => { el.value = 1.5; el.dispatchEvent(new Event('input')); }")
            grid = page.locator("img.grid").first
            page.wait_for_timeout(500)  # the page redraws a slider's move after 80 ms
            page.wait_for_function("[...document.querySelectorAll('img.grid')].every(i => i.complete && i.naturalWidth)")
            box = grid.bounding_box()
            grid.click(position={"x": 12, "y": 12})
            grid.click(position={"x": box["width"] - 12, "y": box["height"] - 12})
            page.wait_for_function("[...document.querySelectorAll('img.interpolation')]"
                                   ".every(i => !i.hidden && i.complete && i.naturalWidth)")
            page.screenshot(path=args.out)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
