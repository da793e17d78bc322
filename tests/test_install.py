"""`pip install gankit` with no extras is enough for `gankit train`: the default dataset ships in
the package, and nothing on the training path reaches for an optional package.

The optional packages are installed here (the dev extra), so a bare install is imitated: a
sitecustomize.py makes them absent for the child process (both `import` and find_spec see nothing,
as on a machine without them) and records anything that tried to import them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gankit

REPO = Path(__file__).resolve().parents[1]
# Every extra's packages (pyproject.toml's optional-dependencies) and their heavy companions.
OPTIONAL = ("mlxtend", "scipy", "sklearn", "pandas", "matplotlib", "tensorboard", "playwright", "hypothesis")

# Replaces the path finder by one that cannot see OPTIONAL: `import x` fails as for a missing
# package, and importlib.util.find_spec("x") returns None (gankit probes tensorboard that way).
ABSENT_SHIM = '''
import atexit, importlib.machinery, json, os, sys

_ABSENT = set(os.environ["GANKIT_TEST_ABSENT"].split(","))
_tried = []


class _WithoutOptional(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] not in _ABSENT:
            return super().find_spec(name, path, target)
        frames, f = [], sys._getframe(1)
        while f is not None:
            frames.append(f)
            f = f.f_back
        # An import statement goes through _find_and_load; a find_spec probe does not.
        if any(fr.f_code.co_name == "_find_and_load" for fr in frames):
            caller = next((fr for fr in frames if not fr.f_code.co_filename.startswith("<frozen")), None)
            _tried.append([name, caller.f_code.co_filename if caller else "?"])
        return None


sys.meta_path[:] = [_WithoutOptional if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
sys.path_importer_cache.clear()


@atexit.register
def _report():
    with open(os.environ["GANKIT_TEST_REPORT"], "w") as out:
        json.dump({"tried": _tried, "loaded": sorted(m for m in sys.modules if m.partition(".")[0] in _ABSENT)}, out)
'''


def _gankit_command() -> list[str]:
    """The `gankit` console script of this environment (as a user types it), else python -m gankit."""
    script = Path(sys.executable).with_name("gankit")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gankit"]


@pytest.mark.slow
def test_train_runs_without_any_optional_package(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(ABSENT_SHIM)
    report = tmp_path / "imports.json"
    # The shim first; then the gankit these tests import (a checkout may differ from the installed one).
    pythonpath = os.pathsep.join([str(shim), str(Path(gankit.__file__).resolve().parents[1])])
    env = {**os.environ, "PYTHONPATH": pythonpath, "GANKIT_TEST_ABSENT": ",".join(OPTIONAL),
           "GANKIT_TEST_REPORT": str(report), "GANKIT_DATA": str(tmp_path / "data")}
    out = tmp_path / "run"
    done = subprocess.run([*_gankit_command(), "train", "--steps", "5", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "shipped with gankit" in done.stdout
    for name in ("config.json", "metrics.jsonl", "report.html", "progress.gif"):
        assert (out / name).is_file(), name
    assert any((out / "samples").iterdir()) and any((out / "checkpoints").iterdir())
    assert json.loads((out / "config.json").read_text())["dataset"]["images"] == 5000
    imports = json.loads(report.read_text())
    # Not even attempted by gankit's own code. (torch tries some itself, e.g. torch._dynamo's trace
    # rules look for hypothesis, pandas and sklearn, and carries on without them: not ours to judge.)
    package = str(Path(gankit.__file__).resolve().parent)
    assert [t for t in imports["tried"] if t[1].startswith(package)] == [], imports
    assert imports["loaded"] == [], imports


def test_mnist_5k_shim_really_hides_the_packages(tmp_path):
    """The shim above does what the test relies on (cheap: no torch in the child)."""
    (tmp_path / "sitecustomize.py").write_text(ABSENT_SHIM)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "GANKIT_TEST_ABSENT": "mlxtend,json_not_really",
           "GANKIT_TEST_REPORT": str(tmp_path / "r.json")}
    code = ("import importlib.util\nassert importlib.util.find_spec('mlxtend') is None\n"
            "try:\n    import mlxtend\nexcept ModuleNotFoundError:\n    pass\nelse:\n    raise SystemExit('imported')")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["tried"] == [["mlxtend", "<string>"]]


@pytest.mark.slow
def test_wheel_holds_the_digits_and_their_licence(tmp_path):
    """What `pip install gankit` gets: the wheel carries the data file and its note, the colour prior and its
    note, and the explorer's page."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                            "--no-index", "-q", "-w", str(tmp_path)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    if build.returncode != 0 and "No module named pip" in build.stderr:
        pytest.skip("this environment has no pip to build the wheel with")
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = tmp_path.glob("gankit-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {"gankit/data/mnist_5k.npz", "gankit/data/MNIST_5K_LICENSE.txt"} <= names
        assert zf.read("gankit/data/mnist_5k.npz") == (REPO / "gankit/data/mnist_5k.npz").read_bytes()
        # the colour prior that --init prior starts from, and the note of where it came from
        assert {f"gankit/weights/colour-prior-{side}.{ext}" for side in (32, 64) for ext in ("safetensors", "json")} <= names
        # the page `gankit serve` sends comes from the installed package
        assert {f"gankit/serve/page/{n}" for n in ("index.html", "explorer.js", "explorer.css")} <= names
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "mlxtend" not in "".join(line for line in metadata.splitlines(True)
                                    if line.startswith("Requires-Dist") and "extra ==" not in line)
