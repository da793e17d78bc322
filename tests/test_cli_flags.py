"""One source of truth for flags: every Config field's help and resume kind live in its metadata, the
subcommands' shared flags come from one table, and `--resume --dry-run` runs the resume's own check."""

import argparse
import json

import pytest

from gankit import cli
from gankit.config import FIELDS, FIXED, RESUMABLE_FIELDS, RESUME_KINDS, field_help


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_field_has_help_and_a_resume_kind():
    for name, f in FIELDS.items():
        assert len(field_help(name)) > 10, name
        assert f.metadata["resume"] in RESUME_KINDS, name


def test_what_a_run_computes_cannot_change_on_resume():
    assert {"loss", "lr_g", "arch", "seed", "batch_size", "dataset"} <= set(FIELDS) - RESUMABLE_FIELDS
    assert {"steps", "images", "log_every", "device", "precision", "data_dir"} <= RESUMABLE_FIELDS
    # precision changes the rounding, not the recipe: it is said so, not filed with the logging fields
    assert FIELDS["precision"].metadata["resume"] == "arithmetic"
    assert FIELDS["log_every"].metadata["resume"] == "watching"
    assert all(FIELDS[n].metadata["resume"] != FIXED for n in RESUMABLE_FIELDS)


def test_train_flags_show_the_fields_help():
    train = subcommands()["train"]
    helps = {a.dest: a.help for a in train._actions}
    for name in FIELDS:
        assert helps[name].startswith(field_help(name)), name


def test_shared_flags_read_the_same_in_every_subcommand():
    seen: dict[str, set] = {}
    for command, parser in subcommands().items():
        if command == "train":  # its flags are the Config's fields (test above)
            continue
        for action in parser._actions:
            if "--device" in action.option_strings:
                seen.setdefault("device", set()).add((action.help, action.default))
            if "--fit" in action.option_strings:
                seen.setdefault("fit", set()).add(tuple(action.choices))
    assert len(seen["device"]) == 1  # sample, interpolate, eval, bench: one spelling
    assert seen["fit"] == {("crop", "pad", "stretch")}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dry") / "run"
    assert cli.main(["train", "-q", "--out", str(out), "--steps", "2", "--width", "8", "--batch-size", "8",
                     "--report", "false", "--tensorboard", "off"]) == 0
    return out


def test_a_resume_dry_run_refuses_what_the_resume_refuses(run_dir, capsys):
    capsys.readouterr()
    for argv in (["--dry-run"], []):
        assert cli.main(["train", "-q", "--resume", str(run_dir), "--lr-g", "0.1", *argv]) == 2
        err = capsys.readouterr().err
        assert "another config" in err and "lr_g" in err, argv
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["ckpt_00000002.pt"]  # nothing changed


def test_a_resume_dry_run_prints_the_config_the_resume_would_train(run_dir, capsys):
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run_dir), "--steps", "6", "--dry-run"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["steps"] == 6 and shown["config"]["width"] == 8
