"""Documented means tested: every command that README.md and docs/*.md show is run here, made small.

The documents are read when the tests run, so this checks whatever they say today:

* Shell commands: each line of a fenced block whose info string is sh, bash, shell, zsh or console
  (`$ ` prompts are optional; in a console block and in a block without a language, only `$ `
  lines are commands and the lines under one are its output), and each inline code span, that
  starts with `gankit`, `python -m gankit`, `make`, `torchrun` or `python benchmarks/`. Other
  commands (pip, tensorboard, cd) are not checked. `#` starts a comment; `\\` continues a line.
* A command with a placeholder in capitals (RUN, DIR, FILE, NAME, ...), with `...`, or with a
  comment saying `illustrative` is a reference, not a recipe: its subcommand and every flag it
  names must exist. So must a bare subcommand named inline (`gankit eval`) that cannot run alone.
* Every other gankit command runs in one sandbox folder (in document order, so `--out runs/x`
  made by one command is there for the next), made small: train first resolves its config with
  --dry-run as written, then trains 2 steps of tiny nets; sample and interpolate draw a few
  images; eval scores 200; serve answers the page and a grid of each generator once, on a free
  port, instead of serving until Ctrl-C; bench runs one 0.05 s round of every preset it names; train-evaluator
  one epoch. Inputs a command expects but the documents do not make (a run directory, an .npz of
  images, a folder of pictures, the TOML file shown in the same document) are made for it.
* What cannot run here is named below with the reason, and checked as far as it can be: data that
  is not on this machine (the command resolves as written, then runs on the embedded digits), a
  GPU, the Inception weights (the command must stop with the documented error), torch.compile
  (too slow on a CPU: run without it), several processes or machines under torchrun (the gankit
  part resolves with --dry-run), the long benchmark scripts (their --help lists the flags shown),
  `make test` (this suite) and `make demo` (its gankit lines, from `make -n`, run made small).
* When a block shows a command's output and that output is a `gankit ...: error: ...` line, the
  command must fail with exactly that line. Any other output shown under a `$ ` command must be
  what the command, made small, prints now, line for line, with every number read as a number
  (made small, the numbers differ; the rows, their order and the words may not).
* Each ```python block runs too (in the same sandbox, in order), with `gankit.train` and
  `gankit.evaluate` made small the same way. A block whose info string says `no-run` is skipped.

A documented command this file does not know how to run fails, naming what to add here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gankit
import gankit.api
from gankit.cli import build_parser, main
from gankit.errors import UserError

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

SHELL_LANGS = {"sh", "bash", "shell", "zsh", "console"}
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_]*(?:\|[A-Z][A-Z0-9_]*)*|.*\.\.\..*|<[^>]+>)$")
# Tiny nets and two steps: each training command takes about a second.
TINY_TRAIN = ["--steps", "2", "--width", "8", "--g-widths", "16,32", "--d-widths", "32,16", "--sample-grid", "16",
              "--log-every", "1", "--checkpoint-every", "2"]
SMALL_BENCH = ["--seconds", "0.05", "--rounds", "1", "--warmup", "1", "--samples", "200", "--batch-size", "32",
               "--threads", "1"]
SMALL_EVAL_N = "200"

# ------------------------------------------------------------------ what cannot run here, and why
NO_DATA = ("{name} is not on this machine (no network in tests): the command must resolve as written "
           "(--dry-run); it then runs on the embedded mnist-5k digits")
NO_GPU = "no CUDA GPU here: the command must stop with the documented error"
NO_INCEPTION = "the Inception weights (91 MB) are not here: the command must stop saying where to get them"
COMPILE = "torch.compile takes minutes on a CPU: the command runs without --compile"
TORCHRUN = "several processes, GPUs or machines under torchrun: the gankit part must resolve with --dry-run"
LONG_SCRIPTS = {  # script -> why it is not run; its --help must list every flag the documents show
    "benchmarks/preset_gallery.py": "trains every preset for minutes each (about 30 minutes), needs Fashion-MNIST",
    "benchmarks/quality_table.py": "trains every preset for 5 and 20 minutes (about 2.5 hours), needs Fashion-MNIST",
    "benchmarks/augment_check.py": "trains twice for 8 minutes (about 17 minutes)",
    "benchmarks/gpu_check.sh": "needs a CUDA GPU and Fashion-MNIST (about 6 minutes on an H200)",
    "benchmarks/own_pictures.py": "decodes 8,121 pictures six times and trains nine times (about 15 minutes)",
    "benchmarks/extractor_agreement.py": "scores real runs with two evaluator files of one folder, 10,000 images each",
    "benchmarks/colour_table.py": "trains 5 minutes per recipe, seed and set on Debian's colour picture sets (about 75 minutes)",
    "benchmarks/quality_curves.py": "overlays runs that trained for minutes each with --eval-at-minutes",
    "benchmarks/eval_speed.py": "times gankit eval at 5,000 and 10,000 images, three metric sets, three times each, per tree",
    "benchmarks/extractor_checks.py": "trains two extractors per Debian picture set and checks them (minutes per set)",
    "benchmarks/colour_search.py": "trains 2 or 5 minutes per candidate and seed on Debian's openclipart (about 40 minutes a screen)",
    "benchmarks/step_profile.py": "times and profiles a recipe's training step for about 30 seconds",
    "benchmarks/pretrain_prior.py": "trains the colour preset for 30 to 45 minutes on Debian's openclipart",
    "benchmarks/cross_checks.py": "checks an extractor on thousands of a Debian set's pictures, degraded 15 ways",
    "benchmarks/nearest_pictures.py": "reads a fine-tuned run's samples against Debian's 8,105 openclipart pictures",
    "benchmarks/ema_or_raw.py": "scores checkpoints of 64-px runs twice, 5,000 images each, with openclipart's classifier",
}
MAKE_TARGETS = {  # target -> how it is checked
    "demo": "its gankit lines (from `make -n demo`) run made small",
    "test": "this test suite: `make -n test` must run pytest",
    "install": "`make -n install` must succeed (it installs packages)",
    "clean": "`make -n clean` must succeed (it deletes .venv and runs/)",
    "": "`make -n` (the default target, install) must succeed",
}


# ------------------------------------------------------------------ reading the documents
@dataclass
class Item:
    """One documented command or Python example."""

    doc: Path
    line: int
    text: str
    kind: str  # "block", "inline", "python"
    output: str = ""  # the output a block shows under a `$ ` command
    illustrative: bool = False
    tomls: list[str] = field(default_factory=list)  # the document's TOML blocks (for --config FILE)

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def _ours(tokens: list[str]) -> bool:
    if not tokens:
        return False
    first = tokens[0]
    if first in ("gankit", "make", "torchrun") or first.endswith("/gankit"):
        return True
    if first in ("python", "python3") or first.endswith(("/python", "/python3")):
        return tokens[1:3] == ["-m", "gankit"] or (len(tokens) > 1 and tokens[1].startswith("benchmarks/"))
    return False


def _split(text: str) -> list[list[str]]:
    """The commands of one shell line (split at && and ;), comments dropped."""
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError:
        return [text.split()]
    parts, current = [], []
    for tok in tokens:
        if tok in ("&&", ";", "||"):
            parts.append(current)
            current = []
        else:
            current.append(tok)
    parts.append(current)
    return [p for p in parts if p]


def read_doc(doc: Path) -> list[Item]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    items: list[Item] = []
    tomls: list[str] = []
    prose: list[tuple[int, str]] = []  # lines outside fences, for inline spans
    i = 0
    while i < len(lines):
        m = re.match(r"^\s*(`{3,}|~{3,})\s*([^`]*)$", lines[i])
        if not m:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        fence, info = m.group(1), m.group(2).strip()
        lang = info.split()[0].lower() if info else ""
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = lines[start:j]
        i = j + 1
        if lang == "toml":
            tomls.append("\n".join(body) + "\n")
        elif lang == "python":
            items.append(Item(doc, start, "\n".join(body) + "\n", "python", illustrative="no-run" in info))
        elif lang in SHELL_LANGS or lang == "":
            items += _block_commands(doc, start, body, prompts_only=lang in ("console", ""))
    joined = "\n".join(text for _, text in prose)
    offsets = np.cumsum([0] + [len(text) + 1 for _, text in prose])
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", joined):
        text = " ".join(m.group(1).split())
        if any(_ours(part) for part in _split(text)):
            line = prose[int(np.searchsorted(offsets, m.start(), side="right")) - 1][0]
            items.append(Item(doc, line, text, "inline"))
    for item in items:
        item.tomls = tomls
    return sorted(items, key=lambda it: it.line)


def _block_commands(doc: Path, start: int, body: list[str], prompts_only: bool) -> list[Item]:
    items: list[Item] = []
    k = 0
    while k < len(body):
        line, number = body[k].rstrip(), start + k + 1
        k += 1
        has_prompt = line.lstrip().startswith("$ ")
        if prompts_only and not has_prompt:
            continue
        text = line.lstrip()[2:] if has_prompt else line.strip()
        while text.endswith("\\") and k < len(body):
            text = text[:-1] + " " + body[k].strip()
            k += 1
        output = []
        if has_prompt:
            while k < len(body) and not body[k].lstrip().startswith("$ "):
                output.append(body[k])
                k += 1
        if not any(_ours(part) for part in _split(text)):
            continue
        comment = text.split("#", 1)[1] if "#" in text else ""
        items.append(Item(doc, number, text, "block", "\n".join(output).strip(),
                          illustrative="illustrative" in comment.lower()))
    return items


def documented_items() -> list[Item]:
    items = [item for doc in DOCS if doc.is_file() for item in read_doc(doc)]
    every_toml = [t for item in items for t in item.tomls]
    for item in items:  # `--config FILE`: the TOML block of the same document, else of another
        item.tomls = list(dict.fromkeys(item.tomls + every_toml))
    return items


ITEMS = documented_items()


# ------------------------------------------------------------------ the sandbox the commands run in
def _available(dataset: str) -> bool:
    from gankit.data import describe_datasets

    for name, _about, where in describe_datasets():
        if name == dataset:
            return where.startswith("found")
    return Path(dataset).expanduser().exists()


def _registered(dataset: str) -> bool:
    from gankit.data import describe_datasets
    return dataset in {name for name, _a, _w in describe_datasets()}


class Flags:
    """argv helpers: read, set and drop `--flag value` pairs (`--flag=value` is split first)."""

    def __init__(self, argv: list[str]):
        self.argv: list[str] = []
        for tok in argv:
            if tok.startswith("--") and "=" in tok:
                self.argv += tok.split("=", 1)
            else:
                self.argv.append(tok)

    def has(self, flag: str) -> bool:
        return flag in self.argv

    def get(self, flag: str) -> str | None:
        value = None
        for k, tok in enumerate(self.argv[:-1]):
            if tok == flag:
                value = self.argv[k + 1]
        return value

    def set(self, flag: str, value: str) -> None:
        self.drop(flag, with_value=True)
        self.argv += [flag, value]

    def drop(self, flag: str, with_value: bool = False) -> None:
        out, skip = [], False
        for tok in self.argv:
            if skip:
                skip = False
                continue
            if tok == flag:
                skip = with_value
                continue
            out.append(tok)
        self.argv = out


@dataclass
class Result:
    code: int
    out: str
    err: str


class Sandbox:
    """The folder the documented commands run in, and what it has made for them."""

    def __init__(self, root: Path, tiny_run: Path):
        self.root, self.home, self.tiny_run = root, root / "home", tiny_run
        self.home.mkdir(parents=True, exist_ok=True)
        self.made: set[Path] = set()  # inputs made here (a documented `--out` may replace them)
        self.default_outs: set[str] = set()
        self.clashes = 0
        self.done: dict[tuple[str, ...], str] = {}  # a command already run (in any document) -> where
        self.bench_runs: dict[tuple[str, ...], tuple[list[str], Path]] = {}
        self.notes: list[str] = []

    def path(self, text: str) -> Path:
        p = Path(text.replace("~", str(self.home), 1) if text.startswith("~") else text)
        return p if p.is_absolute() else self.root / p

    def expand(self, argv: list[str]) -> list[str]:
        return [str(self.home) + tok[1:] if tok.startswith("~/") else tok for tok in argv]

    # --- inputs the documents assume
    def run_dir(self, text: str) -> None:
        """A run directory, checkpoint or .npz the command reads: made from the tiny run if absent."""
        p = self.path(text)
        if p.exists():
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix == ".pt":
            from gankit.run.checkpoint import latest
            shutil.copy(latest(self.tiny_run), p)
        elif p.suffix in (".npz", ".npy"):
            images = gankit.load(self.tiny_run).sample(64, seed=0).permute(0, 2, 3, 1).numpy()
            np.savez(p, images=images) if p.suffix == ".npz" else np.save(p, images)
        else:
            shutil.copytree(self.tiny_run, p)
        self.made.add(p)
        self.notes.append(f"made {p.relative_to(self.root)} (the document assumes it exists)")

    def picture_folder(self, text: str) -> None:
        """A folder of pictures in two class sub-folders, for `--dataset PATH` that does not exist."""
        p = self.path(text)
        if p.exists():
            return
        rng = np.random.default_rng(0)
        for label in ("a", "b"):
            (p / label).mkdir(parents=True)
            for k in range(12):
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(p / label / f"{k}.png")
        self.notes.append(f"made a folder of 24 pictures at {text}")

    def small_stand_in(self, text: str) -> str:
        """A small folder of pictures standing in for a real one of thousands (named in the notes)."""
        stand_in = "_pictures-for-" + Path(text).name
        self.picture_folder(stand_in)
        self.notes.append(f"ran on 24 pictures made here instead of the {text} the document names (thousands)")
        return str(self.path(stand_in))

    def labelled_digits(self) -> Path:
        """200 labelled digits of all ten classes, for train-evaluator made small."""
        p = self.root / "_labelled-digits.npz"
        if not p.exists():
            from gankit.data import open_dataset
            data = open_dataset("mnist-5k")
            pick = np.random.default_rng(0).permutation(len(data))[:200]
            np.savez(p, images=data.images[pick].numpy(), labels=data.labels[pick].numpy())
        return p

    def config_file(self, text: str, item: Item) -> None:
        p = self.path(text)
        if not p.exists() and p.suffix == ".toml" and item.tomls:
            p.write_text(item.tomls[0], encoding="utf-8")
            self.notes.append(f"wrote the document's TOML block to {text}")

    def output_parent(self, text: str | None) -> None:
        """Output folders a user has in the repository (benchmarks/results/) exist here too."""
        if text and not Path(text).is_absolute() and (REPO / text).parent.is_dir():
            self.path(text).parent.mkdir(parents=True, exist_ok=True)


def gankit_cli(argv: list[str], capsys) -> Result:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return Result(code, out, err)


def expect_ok(result: Result, argv: list[str]) -> Result:
    assert result.code == 0, (f"`gankit {shlex.join(argv)}` exited {result.code}\n"
                              f"--- stdout\n{result.out[-3000:]}\n--- stderr\n{result.err[-3000:]}")
    return result


def expect_error(result: Result, argv: list[str], pattern: str, why: str) -> None:
    assert result.code != 0 and re.search(pattern, result.err), (
        f"`gankit {shlex.join(argv)}`: {why}, so it should stop with an error matching {pattern!r}; "
        f"it exited {result.code}\n--- stderr\n{result.err[-3000:]}")


# ------------------------------------------------------------------ references
def check_reference(argv: list[str], what: str) -> None:
    """A command shown with placeholders: its subcommand and flags must exist."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    if not argv or argv[0].startswith("-"):
        return
    assert argv[0] in subparsers.choices, f"{what}: gankit has no subcommand {argv[0]!r}"
    options = subparsers.choices[argv[0]]._option_string_actions
    for tok in argv[1:]:
        flag = tok.split("=", 1)[0]
        if flag.startswith("-") and flag != "-" and not re.match(r"^-\d", flag):
            assert flag in options, f"{what}: `gankit {argv[0]}` has no option {flag}"


def is_reference(argv: list[str], item: Item) -> bool:
    return item.illustrative or any(PLACEHOLDER.match(tok) for tok in argv[1:] if tok)


def needs_arguments(argv: list[str]) -> bool:
    """`gankit eval` named in prose: a subcommand that cannot run without arguments."""
    if len(argv) != 1:
        return False
    parser = build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit:
        return True
    return False


# ------------------------------------------------------------------ running one gankit command
def run_gankit(argv: list[str], item: Item, box: Sandbox, capsys, dry_run_only: bool = False) -> None:
    argv = box.expand(argv)
    what = f"{item.where}: `{item.text}`"
    if is_reference(argv, item) or (item.kind == "inline" and needs_arguments(argv)):
        check_reference(argv, what)
        if len(argv) == 1:
            expect_ok(gankit_cli([argv[0], "--help"], capsys), [argv[0], "--help"])
        return
    error_line = _documented_error(item)
    if not argv or argv[0].startswith("-") or "--help" in argv or "-h" in argv:  # alone, --version, --help
        expect_ok(gankit_cli(argv or ["--help"], capsys), argv or ["--help"])
        return
    plan = PLANS.get(argv[0])
    if plan is None:
        pytest.fail(f"{what}: this test does not know how to run `gankit {argv[0]}` made small; "
                    f"add it to PLANS in {Path(__file__).name}")
    flags = Flags(argv)
    if flags.get("--device") == "cuda" and not _cuda():
        box.notes.append(NO_GPU)
        result = gankit_cli(flags.argv, capsys) if argv[0] != "train" else gankit_cli(
            flags.argv + ["--steps", "2"], capsys)
        expect_error(result, flags.argv, r"--device cuda: .*no CUDA GPU", NO_GPU)
        return
    if error_line:
        result = gankit_cli(flags.argv + (["--steps", "2"] if argv[0] == "train" else []), capsys)
        first = result.err.strip().splitlines()[0] if result.err.strip() else ""
        assert result.code != 0 and first == error_line, (
            f"{what}: the document shows the error\n  {error_line}\nbut the command exited {result.code} with\n"
            f"  {first or result.err[-2000:]}")
        return
    result = plan(flags, item, box, capsys, dry_run_only)
    if item.output:
        assert result is not None, (f"{what}: the document shows this command's output, but this test does not "
                                    f"check the output of `gankit {argv[0]}`; return its Result from the plan")
        shown, printed = _output_shape(item.output), _output_shape(result.out)
        assert shown == printed, (f"{what}: the output the document shows is not what the command prints now "
                                  f"(numbers read as N):\n--- shown\n" + "\n".join(shown)
                                  + "\n--- printed\n" + "\n".join(printed))


NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?")


def _output_shape(text: str) -> list[str]:
    """A command's output with every number replaced by N and runs of spaces by one."""
    return [" ".join(NUMBER.sub("N", line).split()) for line in text.strip().splitlines() if line.strip()]


def _documented_error(item: Item) -> str:
    first = item.output.splitlines()[0].strip() if item.output else ""
    return first if re.match(r"^gankit [\w-]+: (error|stopped)\b", first) else ""


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def plan_train(flags: Flags, item: Item, box: Sandbox, capsys, dry_run_only: bool) -> None:
    resume = flags.get("--resume")
    if resume:
        box.run_dir(resume)
    if flags.get("--config"):
        box.config_file(flags.get("--config"), item)
    dataset = flags.get("--dataset")
    if dataset and _large_picture_source(box.path(dataset)):
        flags.set("--dataset", box.small_stand_in(dataset))
    elif dataset and not _registered(dataset) and not box.path(dataset).exists():
        if Path(dataset).suffix in (".npz", ".npy"):
            box.run_dir(dataset)  # an array of images
        else:
            box.picture_folder(dataset)
    if flags.has("--dry-run"):
        expect_ok(gankit_cli(flags.argv, capsys), flags.argv)
        return
    # 1. the command as written resolves (nothing is read or written)
    resolved = expect_ok(gankit_cli(flags.argv + ["--dry-run"], capsys), flags.argv + ["--dry-run"])
    if dry_run_only:
        return
    info = json.loads(resolved.out)
    cfg = info["config"]
    # 2. the same command, small
    if flags.has("--compile"):
        flags.drop("--compile")
        box.notes.append(COMPILE)
    if resume:  # two steps more than the run has
        done = json.loads((box.path(resume) / "config.json").read_text(encoding="utf-8"))["config"]
        flags.set("--steps", str((done.get("steps") or 0) + 2))
    else:
        if not _available(cfg["dataset"]):
            box.notes.append(NO_DATA.format(name=cfg["dataset"]))
            flags.argv += ["--dataset", "mnist-5k", "--split", "train"]
        flags.argv += TINY_TRAIN
        batch = flags.get("--batch-size") or flags.get("--global-batch-size")
        if batch is None or int(batch) > 64:
            flags.drop("--global-batch-size", with_value=True)
            flags.set("--batch-size", "16")
        if cfg.get("eval_every"):
            flags.argv += ["--eval-every", "2", "--eval-n", "64"]
        if cfg.get("holdout", 0) > 4:  # a stand-in folder holds a few dozen pictures
            flags.set("--holdout", "4")
        if not flags.has("--tensorboard"):
            flags.argv += ["--tensorboard", "off"]
        out = flags.get("--out")
        if out is None:
            name = info["preset"]
            if name in box.default_outs:  # runs/<preset>-<time>: a second one within a second would clash
                box.clashes += 1
                flags.set("--out", f"runs/{name}-again-{box.clashes}")
            box.default_outs.add(name)
        elif box.path(out) in box.made:
            shutil.rmtree(box.path(out))
            box.made.discard(box.path(out))
    expect_ok(gankit_cli(flags.argv, capsys), flags.argv)


def plan_generator_reader(flags: Flags, item: Item, box: Sandbox, capsys, dry_run_only: bool) -> None:
    """sample, interpolate, export, report: a run (made if the document assumes one), a few images."""
    sub, target = flags.argv[0], _positionals(flags.argv)[0]
    box.run_dir(target)
    if sub == "sample":
        n = int(flags.get("-n") or 64)
        flags.set("-n", str(min(n, 4 if flags.has("--by-class") else 16)))
    if sub == "interpolate":
        flags.set("--rows", str(min(int(flags.get("--rows") or 8), 4)))
        flags.set("--steps", str(min(int(flags.get("--steps") or 10), 6)))
    box.output_parent(flags.get("--out"))
    expect_ok(gankit_cli(flags.argv, capsys), flags.argv)


def plan_eval(flags: Flags, item: Item, box: Sandbox, capsys, dry_run_only: bool) -> Result | None:
    box.run_dir(_positionals(flags.argv)[0])
    dataset = flags.get("--dataset")
    if dataset and not _available(dataset):
        box.notes.append(NO_DATA.format(name=dataset))
        flags.set("--dataset", "mnist-5k")
    flags.set("-n", SMALL_EVAL_N)
    box.output_parent(flags.get("--json"))
    if flags.get("--extractor") == "inception":
        from gankit.metrics.inception import weights_search_paths
        if not any(p.is_file() for p in weights_search_paths(flags.get("--inception-weights"))):
            box.notes.append(NO_INCEPTION)
            expect_error(gankit_cli(flags.argv, capsys), flags.argv,
                         r"pt_inception-2015-12-05-6726825d\.pth.*\n?.*[Dd]ownload it from https://", NO_INCEPTION)
            return
    result = expect_ok(gankit_cli(flags.argv, capsys), flags.argv)
    assert "protocol:" in result.out, result.out
    return result


def plan_train_evaluator(flags: Flags, item: Item, box: Sandbox, capsys, dry_run_only: bool) -> None:
    dataset = flags.get("--dataset")
    if dataset and not _available(dataset):
        box.notes.append(NO_DATA.format(name=dataset) + " (200 of them)")
    flags.set("--dataset", str(box.labelled_digits()))  # 1 epoch of 10,000 images takes too long here
    if flags.has("--self-supervised"):  # it counts steps, not epochs
        flags.set("--steps", "2")
    else:
        flags.set("--epochs", "1")
    box.output_parent(flags.get("--out"))
    expect_ok(gankit_cli(flags.argv + ["-q"], capsys), flags.argv)
    if flags.get("--out"):
        assert box.path(flags.get("--out")).is_file()


def plan_compare(flags: Flags, item: Item, box: Sandbox, capsys, dry_run_only: bool) -> None:
    runs = _positionals(flags.argv)
    for run in runs:
        box.run_dir(run)
    result = expect_ok(gankit_cli(flags.argv, capsys), flags.argv)
    labels = [line.split("  ")[0] for line in result.out.splitlines()]
    assert len(labels) == len(set(labels)), f"a row label appears twice:\n{result.out}"


def plan_bench(flags: Flags, item: Item, box: Sandbox, capsys, dry_run_only: bool) -> None:
    from gankit.presets import PRESETS

    if flags.has("--compile"):
        flags.drop("--compile")
        box.notes.append(COMPILE)
    dataset = flags.get("--dataset")
    if dataset and not _available(dataset):
        box.notes.append(NO_DATA.format(name=dataset))
        flags.set("--dataset", "mnist-5k")
    wanted = flags.get("--json")
    presets = flags.get("--presets")
    names = [p.strip() for p in presets.split(",") if p.strip()] if presets else list(PRESETS)
    unknown = set(names) - set(PRESETS)
    assert not unknown, f"{item.where}: unknown presets {unknown}"
    for flag in ("--json", "--presets", "--seconds", "--rounds", "--warmup", "--samples", "--batch-size", "--threads"):
        flags.drop(flag, with_value=True)
    flags.drop("-q")
    # The same settings (timing flags, -q and --json aside) share one run over every preset named by
    # any of them: one short round of each preset, written to JSON as `--json` does.
    key = tuple(flags.argv)
    if key not in box.bench_runs or not set(names) <= set(box.bench_runs[key][0]):
        everyone = sorted(set(names) | set(box.bench_runs.get(key, ([], None))[0]), key=list(PRESETS).index)
        out = box.root / f"_bench-{len(box.bench_runs)}.json"
        argv = flags.argv + ["--presets", ",".join(everyone), *SMALL_BENCH, "--json", str(out)]
        result = expect_ok(gankit_cli(argv, capsys), argv)
        assert "x plain" in result.out, result.out
        box.bench_runs[key] = (everyone, out)
    report = json.loads(box.bench_runs[key][1].read_text())
    measured = {r["preset"]: r for r in report["presets"]}
    for name in names:
        assert measured[name]["images_per_s"]["gankit fp32"] > 0 and measured[name]["images_per_s"]["plain"] > 0
    if wanted:
        box.output_parent(wanted)
        report["presets"] = [measured[n] for n in names]
        box.path(wanted).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def plan_prepare(flags: Flags, item: Item, box: Sandbox, capsys, dry_run_only: bool) -> None:
    sources = _positionals(flags.argv)
    if sources and _large_picture_source(box.path(sources[0])):
        flags.argv[flags.argv.index(sources[0])] = box.small_stand_in(sources[0])
    elif sources and not box.path(sources[0]).exists():
        box.picture_folder(sources[0])
    result = expect_ok(gankit_cli(flags.argv, capsys), flags.argv)
    if sources and not flags.has("--clear"):
        assert " pictures at " in result.out, result.out


def _large_picture_source(path: Path) -> bool:
    """A real folder (or ZIP) of more pictures than this test decodes in a moment."""
    if not (path.is_dir() or path.suffix == ".zip") or not path.exists():
        return False
    from gankit.data.listing import list_pictures
    try:
        return len(list_pictures(path).names) > 100
    except UserError:
        return False


def plan_serve(flags: Flags, item: Item, box: Sandbox, capsys, dry_run_only: bool) -> Result:
    """serve: the runs it names (made if the document assumes them), on a free port; instead of
    serving until Ctrl-C, the page, the list of generators and a grid of each are fetched once."""
    import http.client
    import threading

    import gankit.serve.server as server_mod

    for target in _positionals(flags.argv):
        box.run_dir(target)
    flags.set("--port", "0")
    fetched: list[int] = []

    def fetch_once(server) -> None:
        host, port = server.server_address[:2]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            conn = http.client.HTTPConnection(host, port, timeout=60)
            conn.request("GET", "/api/models")
            models = json.loads(conn.getresponse().read())["models"]
            paths = ["/"] + [f"/api/grid.png?model={k}&n=4" for k, m in enumerate(models) if m["loaded"]]
            for path in paths:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                fetched.append(response.status)
            conn.close()
        finally:
            server.shutdown()
            server.server_close()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(server_mod, "serve_until_interrupted", fetch_once)
        result = expect_ok(gankit_cli(flags.argv, capsys), flags.argv)
    assert fetched and all(status == 200 for status in fetched), fetched
    return result


def plan_as_is(flags: Flags, item: Item, box: Sandbox, capsys, dry_run_only: bool) -> Result:
    return expect_ok(gankit_cli(flags.argv, capsys), flags.argv)


def _positionals(argv: list[str]) -> list[str]:
    """The positional arguments of a subcommand's argv."""
    sub = build_parser()._subparsers._group_actions[0].choices[argv[0]]
    takes_value = {s for a in sub._actions if a.nargs != 0 for s in a.option_strings}
    out, k = [], 1
    while k < len(argv):
        if argv[k] in takes_value:
            k += 2
            continue
        if not argv[k].startswith("-"):
            out.append(argv[k])
        k += 1
    return out


PLANS = {
    "train": plan_train,
    "sample": plan_generator_reader,
    "interpolate": plan_generator_reader,
    "export": plan_generator_reader,
    "serve": plan_serve,
    "report": lambda f, i, b, c, d: (b.run_dir(_positionals(f.argv)[0]), plan_as_is(f, i, b, c, d))[1],
    "eval": plan_eval,
    "train-evaluator": plan_train_evaluator,
    "compare": plan_compare,
    "bench": plan_bench,
    "presets": plan_as_is,
    "datasets": plan_as_is,
    "prepare": plan_prepare,
}


# ------------------------------------------------------------------ make, torchrun, scripts
def run_make(argv: list[str], item: Item, box: Sandbox, capsys) -> None:
    targets = [t for t in argv[1:] if not t.startswith("-") and "=" not in t] or [""]
    for target in targets:
        assert target in MAKE_TARGETS, (f"{item.where}: `make {target}` is unknown to this test; "
                                         f"add it to MAKE_TARGETS in {Path(__file__).name}")
        dry = subprocess.run(["make", "-n", "-C", str(REPO), *([target] if target else []),
                              "DEMO_DIR=runs/demo", "BIN=.venv/bin"], capture_output=True, text=True)
        assert dry.returncode == 0, f"`make -n {target}` failed:\n{dry.stderr}"
        if target == "test":
            assert "pytest" in dry.stdout, dry.stdout
        if target != "demo":
            continue
        lines = [shlex.split(line) for line in dry.stdout.splitlines() if line.strip()]
        gankit_lines = [toks for toks in lines if toks and toks[0].endswith("/gankit")]
        assert any(toks[1] == "train" for toks in gankit_lines), dry.stdout
        for toks in lines:
            if toks[:2] == ["rm", "-rf"]:
                for path in toks[2:]:
                    assert not Path(path).is_absolute() and ".." not in path, toks
                    shutil.rmtree(box.path(path), ignore_errors=True)
            elif toks and toks[0].endswith("/gankit"):
                run_gankit(toks[1:], item, box, capsys)


def run_torchrun(argv: list[str], item: Item, box: Sandbox, capsys) -> None:
    box.notes.append(TORCHRUN)
    if "..." in argv or len(argv) == 1:  # `torchrun`, `torchrun ... --resume`: references to commands shown
        return
    assert "-m" in argv and argv[argv.index("-m") + 1] == "gankit", f"{item.where}: torchrun of what? {argv}"
    run_gankit(argv[argv.index("-m") + 2:], item, box, capsys, dry_run_only=True)


def run_script(argv: list[str], item: Item, box: Sandbox) -> None:
    script = argv[1]
    assert script in LONG_SCRIPTS, (f"{item.where}: `{script}` is unknown to this test; name it in "
                                    f"LONG_SCRIPTS in {Path(__file__).name} with the reason it cannot run here")
    assert (REPO / script).is_file(), f"{item.where}: {script} does not exist"
    if script.endswith(".sh"):  # a shell script takes its settings from the environment, no flags
        assert argv[0] == "bash" and not argv[2:], f"{item.where}: run it as `bash {script}`, without flags"
        done = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{script} is not valid bash: {done.stderr}"
        return
    options = _script_options(REPO / script)
    ours = argv[2:argv.index("--")] if "--" in argv else argv[2:]  # after `--`: gankit train's flags
    for tok in ours:
        if tok.startswith("-"):
            assert tok.split("=")[0] in options, f"{item.where}: {script} has no option {tok} (it has {options})"


def _script_options(path: Path) -> set[str]:
    """The option strings a script's argparse defines (read from its source: running it means
    importing torch, seconds per script)."""
    import ast

    options = {"-h", "--help"}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            options |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return options


def run_item(item: Item, box: Sandbox, capsys) -> None:
    for argv in _split(item.text):
        if not _ours(argv):
            continue
        key = tuple(argv) + (("<error>",) if _documented_error(item) else ("<output>",) if item.output else ())
        if key in box.done:  # the same command, shown again (with the same kind of output, if any)
            box.notes.append(f"the same command ran at {box.done[key]}")
            continue
        box.done[key] = item.where
        first = argv[0]
        if first == "make":
            run_make(argv, item, box, capsys)
        elif first == "torchrun":
            run_torchrun(argv, item, box, capsys)
        elif first == "gankit" or first.endswith("/gankit"):
            run_gankit(argv[1:], item, box, capsys)
        elif argv[1:3] == ["-m", "gankit"]:
            rest = argv[3:]
            if any("..." in tok for tok in rest):  # "python -m gankit ...: the same": the module runs
                done = subprocess.run([sys.executable, "-m", "gankit", "--version"], capture_output=True, text=True)
                assert done.returncode == 0 and "gankit" in done.stdout, done.stderr
            else:
                run_gankit(rest, item, box, capsys)
        else:
            run_script(argv, item, box)


# ------------------------------------------------------------------ Python examples
class SmallApi:
    """`gankit.train` and `gankit.evaluate` as the examples call them, made small."""

    def __init__(self, box: Sandbox):
        self.box = box
        self.train, self.evaluate, self.load = gankit.api.train, gankit.api.evaluate, gankit.api.load

    def small_train(self, preset=None, **kw):
        out = self.box.path(str(kw["out"])) if kw.get("out") is not None else None
        if out in self.box.made:  # an input made for an earlier example; this one trains it
            shutil.rmtree(out)
            self.box.made.discard(out)
        if kw.get("resume") is not None:
            self.box.run_dir(str(kw["resume"]))
            done = json.loads((self.box.path(str(kw["resume"])) / "config.json").read_text())["config"]
            kw["steps"] = (done.get("steps") or 0) + 2
            return self.train(preset, **kw)
        _name, cfg = gankit.api.resolve_run(preset=preset, config_file=kw.get("config"),
                                             fields={k: v for k, v in kw.items()
                                                     if k not in ("config", "out", "resume", "quiet")})
        if not _available(cfg.dataset):
            kw.update(dataset="mnist-5k", split="train")
        kw.pop("epochs", None)
        kw.update(steps=2, width=8, g_widths=(16, 32), d_widths=(32, 16), sample_grid=16, log_every=1,
                  checkpoint_every=2, tensorboard="off", quiet=True)
        if kw.get("batch_size", 999) > 64:
            kw["batch_size"] = 16
        if cfg.eval_every:
            kw.update(eval_every=2, eval_n=64)
        return self.train(preset, **kw)

    def small_evaluate(self, target, dataset=None, **kw):
        if isinstance(target, (str, os.PathLike)) and not isinstance(target, gankit.api.TrainedRun):
            self.box.run_dir(os.fspath(target))
        if dataset and not _available(dataset):
            dataset = "mnist-5k"
        kw["n"] = min(int(kw.get("n", 10_000)), int(SMALL_EVAL_N))
        return self.evaluate(target, dataset, **kw)

    def small_load(self, target, *args, **kw):
        if isinstance(target, (str, os.PathLike)) and not isinstance(target, gankit.api.TrainedRun):
            self.box.run_dir(os.fspath(target))
        return self.load(target, *args, **kw)


def run_python(item: Item, box: Sandbox, monkeypatch) -> None:
    small = SmallApi(box)
    for module in (gankit, gankit.api):
        monkeypatch.setattr(module, "train", small.small_train)
        monkeypatch.setattr(module, "evaluate", small.small_evaluate)
        monkeypatch.setattr(module, "load", small.small_load)
    import ast

    for node in ast.walk(ast.parse(item.text)):  # files the example reads: a checkpoint, an array of images
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith((".pt", ".npz")):
            box.run_dir(node.value)
    code = compile(item.text, f"{item.where} (python example)", "exec")
    exec(code, {"__name__": "__doc_example__"})


# ------------------------------------------------------------------ the tests
@pytest.fixture(scope="module")
def box(tmp_path_factory):
    tiny = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train", "-q", "--out", str(tiny), *TINY_TRAIN, "--batch-size", "16", "--tensorboard", "off"]) == 0
    return Sandbox(tmp_path_factory.mktemp("docs-sandbox"), tiny)


@pytest.fixture
def in_box(box, monkeypatch):
    monkeypatch.chdir(box.root)
    monkeypatch.setenv("HOME", str(box.home))
    box.notes.clear()
    return box


def test_the_documents_show_commands_and_a_python_example():
    # Guards the reader itself: a change of fences or prompts must not make every check vanish.
    kinds = {(it.kind, it.text.split()[1] if it.kind != "python" and len(it.text.split()) > 1 else "")
             for it in ITEMS}
    assert ("block", "train") in kinds, [it.text for it in ITEMS]
    assert any(it.kind == "python" for it in ITEMS), "the README must show the Python API in a ```python block"
    assert any("bench" in it.text for it in ITEMS if it.kind != "python")


@pytest.mark.parametrize("item", [it for it in ITEMS if it.kind != "python"],
                         ids=[f"{it.where} {it.text[:70]}" for it in ITEMS if it.kind != "python"])
def test_documented_command(item, in_box, capsys, request):
    try:
        run_item(item, in_box, capsys)
    finally:
        if in_box.notes:
            request.node.user_properties.append(("notes", list(in_box.notes)))
            print(f"{item.where}: " + "; ".join(dict.fromkeys(in_box.notes)))


@pytest.mark.parametrize("item", [it for it in ITEMS if it.kind == "python"],
                         ids=[it.where for it in ITEMS if it.kind == "python"])
def test_documented_python_example(item, in_box, monkeypatch, capsys):
    if item.illustrative:
        pytest.skip(f"{item.where}: marked no-run")
    run_python(item, in_box, monkeypatch)


def test_every_subcommand_has_help(capsys):
    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert set(subcommands) <= set(PLANS), f"a subcommand this test cannot run: {set(subcommands) - set(PLANS)}"
    for name in subcommands:
        result = gankit_cli([name, "--help"], capsys)
        assert result.code == 0 and "usage: gankit " + name in result.out


def test_reader_finds_prompts_continuations_inline_spans_and_errors(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "Run `gankit presets` or `gankit sample RUN -n 10`; not `pip install gankit`.\n\n"
        "```sh\n$ gankit train --preset dcgan \\\n    --steps 5   # a comment\npip install x\n```\n\n"
        "```\n$ gankit train --arch dcgan --image-size 30\ngankit train: error: no\n```\n\n"
        "```toml\npreset = \"dcgan\"\n```\n\n```python\nimport gankit\n```\n",
        encoding="utf-8")
    items = read_doc(doc)
    assert [(it.kind, it.text) for it in items] == [
        ("inline", "gankit presets"), ("inline", "gankit sample RUN -n 10"),
        ("block", "gankit train --preset dcgan  --steps 5   # a comment"),
        ("block", "gankit train --arch dcgan --image-size 30"), ("python", "import gankit\n")]
    assert _documented_error(items[3]) == "gankit train: error: no"
    assert items[0].tomls == ['preset = "dcgan"\n']
    assert is_reference(_split(items[1].text)[0][1:], items[1]) and not is_reference(["presets"], items[0])


def test_output_shape_reads_every_number_as_a_number():
    shown = "metric    model   real data\nFID      142.02    0.39\nKID    36.52  -0.04434\nprotocol: 10,000 images (128-d)"
    assert _output_shape(shown) == ["metric model real data", "FID N N", "KID N N", "protocol: N images (N-d)"]
    assert _output_shape("FID  3.1e-05  1") == ["FID N N"]
    assert _output_shape(shown) != _output_shape(shown.replace("KID", "density"))


def test_api_docstring_example(box, tmp_path, monkeypatch):
    """gankit/api.py's docstring shows the same example as the README: it must run too (in a
    folder of its own: the README's example made the same runs/py)."""
    import textwrap

    own = Sandbox(tmp_path, box.tiny_run)
    monkeypatch.chdir(own.root)

    doc = gankit.api.__doc__
    block = [line for line in doc.split("\n\n", 1)[1].split("\nEverything here")[0].splitlines()]
    code = textwrap.dedent("\n".join(block)).strip() + "\n"
    assert "gankit.train(" in code and "gankit.evaluate(" in code
    run_python(Item(REPO / "gankit" / "api.py", 1, code, "python"), own, monkeypatch)
