"""`gankit serve` without a browser: the request handling (4xx with a sentence for every bad
request, PNGs for good ones), the address rules (127.0.0.1 by default, another only with
--allow-remote), a generator that fails to load, and the principal directions."""

from __future__ import annotations

import http.client
import io
import json
import threading

import pytest
import torch
from PIL import Image
from torch import nn

from gankit.cli import main
from gankit.errors import UserError
from gankit.serve import directions as dirs
from gankit.serve.explorer import load_explorer
from gankit.serve.server import DEFAULT_HOST, make_server

TINY = ["--steps", "2", "--width", "8", "--batch-size", "16", "--sample-grid", "16", "--checkpoint-every", "2",
        "--tensorboard", "off"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A conditional run (the default preset) and an unconditional mlp run, tiny."""
    root = tmp_path_factory.mktemp("serve")
    assert main(["train", "-q", "--out", str(root / "cond"), *TINY]) == 0
    assert main(["train", "-q", "--out", str(root / "mlp"), "--preset", "mlp-gan", "--g-widths", "16,32",
                 "--d-widths", "32,16", "--dataset", "mnist-5k", *TINY]) == 0
    return root / "cond", root / "mlp"


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    missing = tmp_path_factory.mktemp("gone") / "no-such-run"
    explorer = load_explorer([str(runs[0]), str(missing), str(runs[1])], device="cpu")
    srv = make_server(explorer, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def get(srv, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_binds_to_127_0_0_1_by_default(server):
    assert server.server_address[0] == DEFAULT_HOST == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.org"])
def test_refuses_other_addresses_without_the_flag(runs, host):
    explorer = load_explorer([str(runs[1])], device="cpu")
    with pytest.raises(UserError, match="--allow-remote"):
        make_server(explorer, host=host, port=0)


def test_the_cli_names_the_flag_and_binds_nothing(runs, capsys):
    assert main(["serve", str(runs[1]), "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gankit serve: error: --host 0.0.0.0:") and "--allow-remote" in err


def test_allow_remote_binds_another_address(runs):
    srv = make_server(load_explorer([str(runs[1])], device="cpu"), host="0.0.0.0", port=0, allow_remote=True)
    try:
        assert srv.server_address[0] == "0.0.0.0"
    finally:
        srv.server_close()


def test_the_page_and_its_files_are_served(server):
    status, headers, body = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert 'src="/explorer.js"' in page and 'href="/explorer.css"' in page and "http" not in page.split("<body>")[1]
    for path in ("/explorer.js", "/explorer.css"):
        status, _, body = get(server, path)
        assert status == 200 and body
        assert b"http://" not in body and b"https://" not in body  # nothing from anywhere else


def test_models_describe_each_generator_and_name_the_one_that_failed(server):
    status, _, body = get(server, "/api/models")
    models = json.loads(body)["models"]
    assert status == 200 and len(models) == 3
    cond, gone, mlp = models
    assert cond["loaded"] and cond["num_classes"] == 10 and cond["directions"]["method"] == "first layer"
    assert not gone["loaded"] and "no-such-run" in gone["name"] and "no such run directory" in gone["error"]
    assert mlp["loaded"] and mlp["num_classes"] == 0 and mlp["arch"] == "mlp"


def picture(body: bytes) -> Image.Image:
    return Image.open(io.BytesIO(body))


def test_a_grid_redraws_for_seed_sliders_class_and_truncation(server):
    base = "/api/grid.png?model=0&n=4&scale=1"
    status, headers, first = get(server, base + "&seed=1")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert picture(first).size == (2 * 30 + 2, 2 * 30 + 2)  # 2x2 tiles of 28 px, 2 px apart
    assert get(server, base + "&seed=1")[2] == first  # the same request draws the same picture
    for change in ("&seed=2", "&seed=1&d=2", "&seed=1&d=0,0,-2", "&seed=1&class=3", "&seed=1&psi=0.3"):
        assert get(server, base + change)[2] != first, change
    status, headers, _ = get(server, base + "&download=1")
    assert status == 200 and headers["Content-Disposition"].startswith("attachment; filename=")


def test_an_interpolation_walks_between_two_tiles(server):
    status, _, body = get(server, "/api/interpolation.png?model=2&n=4&a=0&b=3&steps=5&scale=1")
    assert status == 200 and picture(body).size == (5 * 30 + 2, 30 + 2)


@pytest.mark.parametrize("path, status, words", [
    ("/api/grid.png", 400, "'model' is missing"),
    ("/api/grid.png?model=7", 400, "out of range (0..2)"),
    ("/api/grid.png?model=x", 400, "not a whole number"),
    ("/api/grid.png?model=0&psi=1.5", 400, "'psi'"),
    ("/api/grid.png?model=0&psi=nan", 400, "'psi'"),
    ("/api/grid.png?model=0&n=1000", 400, "'n'"),
    ("/api/grid.png?model=0&d=1,zz", 400, "'d'"),
    ("/api/grid.png?model=0&d=" + ",".join(["1"] * 9), 400, "directions"),
    ("/api/grid.png?model=0&class=10", 400, "classes 0..9"),
    ("/api/grid.png?model=0&seed=-1", 400, "'seed'"),
    ("/api/grid.png?model=0&seed=1&seed=2", 400, "once"),
    ("/api/grid.png?model=0&colour=red", 400, "unknown parameter"),
    ("/api/interpolation.png?model=0&a=0", 400, "'b' is missing"),
    ("/api/interpolation.png?model=0&n=4&a=0&b=4", 400, "'b'"),
    ("/api/grid.png?model=1", 409, "did not load"),
    ("/../../etc/passwd", 404, "no such page"),
    ("/page/index.html", 404, "no such page"),
])
def test_bad_requests_get_a_4xx_with_a_sentence(server, path, status, words):
    got, headers, body = get(server, path)
    text = body.decode()
    assert got == status and headers["Content-Type"].startswith("text/plain"), (got, text)
    assert words in text and "Traceback" not in text and len(text.splitlines()) == 1


def test_other_methods_are_refused(server):
    status, headers, _ = get(server, "/api/grid.png?model=0", method="POST")
    assert status == 405 and headers["Allow"] == "GET"


def test_serve_refuses_when_nothing_loads(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "a"), str(tmp_path / "b"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "no generator loaded" in err and str(tmp_path / "a") in err and str(tmp_path / "b") in err


def test_directions_are_the_pca_of_the_first_layer():
    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(6, 40), nn.Tanh())
    g.latent_dim = 6
    with torch.no_grad():  # a layer with clearly ranked directions
        g[0].weight.mul_(torch.tensor([4.0, 2.0, 1.0, 0.5, 0.3, 0.1]))
    found = dirs.principal_directions(g, "normal", k=3)
    assert found.method == "first layer" and found.vectors.shape == (3, 6)
    assert found.explained == sorted(found.explained, reverse=True)
    # The same directions from samples: PCA of h = W z + b, regressed back onto z.
    z = torch.randn(20_000, 6)
    h = g[0](z).detach()
    _, _, components = torch.linalg.svd(h - h.mean(0), full_matrices=False)
    coords = (h - h.mean(0)) @ components[:3].T
    z_dirs = torch.linalg.lstsq(coords, z).solution
    z_dirs = torch.nn.functional.normalize(z_dirs, dim=1)
    assert (found.vectors * z_dirs).sum(1).abs().min() > 0.98


def test_directions_without_a_linear_first_layer_come_from_z():
    class ConvFirst(nn.Module):
        latent_dim = 4

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 1, 1)

    found = dirs.principal_directions(ConvFirst(), "uniform", k=4)
    assert found.method == "z" and torch.allclose(found.vectors @ found.vectors.T, torch.eye(4), atol=1e-5)


def test_the_one_hot_columns_of_a_conditional_g_are_left_out(runs):
    from gankit.sampling import load_generator
    tg = load_generator(runs[0], device="cpu")
    weight = dirs.first_layer_weight(tg.g)
    assert weight is not None and weight.shape[1] == tg.cfg.latent_dim
