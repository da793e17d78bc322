"""`gankit bench`: its FLOP count, its reference loop, and one real (short) run end to end."""

import json

import pytest
import torch

from gankit import bench
from gankit.cli import main
from gankit.config import make_config
from gankit.data import open_dataset
from gankit.presets import preset


def test_flops_of_a_linear_layer_forward_and_backward():
    layer = torch.nn.Linear(32, 16, bias=False)
    x = torch.randn(8, 32, requires_grad=True)

    def step():
        layer(x).sum().backward()

    # forward 2*N*in*out; backward the same again for the input's and for the weight's gradient
    assert bench.flops_per_call(step) == 3 * 2 * 8 * 32 * 16


def test_plain_loop_trains_the_same_nets():
    cfg = make_config(preset("mlp-gan"), {"g_widths": (16, 32), "d_widths": (32, 16), "batch_size": 32})
    data = open_dataset("mnist-5k")
    loop = bench.PlainLoop(cfg, data, torch.device("cpu"))
    before = [p.detach().clone() for p in loop.g.parameters()] + [p.detach().clone() for p in loop.d.parameters()]
    loop()
    after = list(loop.g.parameters()) + list(loop.d.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after) if a.dim() > 1)
    assert loop.images_per_step == 32


def test_bench_of_one_preset_measures_every_contender():
    result = bench.bench_preset({"preset": "mlp-gan", "dataset": "mnist-5k", "device": "cpu", "seconds": 0.2,
                                 "rounds": 1, "warmup": 1, "compile": False, "threads": 1, "batch_size": 64,
                                 "force_bf16": True})
    assert set(result["images_per_s"]) == {"gankit fp32", "gankit bf16", "plain"}
    assert all(v > 0 for v in result["images_per_s"].values())
    # seed 000's nets: G 100-256-512-1024-784, D 784-512-256-1; the G step runs G and D again
    assert 2e6 < result["flops_per_image"]["gankit fp32"] < 5e7
    assert result["sample_10k_s"] > 0 and result["peak_rss_mb"] >= result["peak_rss_mb_gankit"] > result["data_mb"] > 0
    bench._add_ratios(result, {"float32": 100.0, "bfloat16": 300.0})
    ips, flops = result["images_per_s"], result["flops_per_image"]
    assert result["speedup_vs_plain"]["gankit fp32"] == round(ips["gankit fp32"] / ips["plain"], 3)
    assert result["share_of_matmul_rate"]["gankit bf16"] == round(ips["gankit bf16"] * flops["gankit bf16"] / 1e9 / 300, 3)
    table = bench.format_table({"machine": {"matmul_gflops": {"float32": 100.0}, "threads": 1, "torch": "x"},
                                "presets": [result]})
    assert "mlp-gan" in table and "GFLOP/s" in table


def test_bench_command_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--presets", "mlp-gan", "--seconds", "0.2", "--rounds", "1", "--warmup", "1",
                 "--threads", "1", "--json", str(out), "-q"]) == 0
    report = json.loads(out.read_text())
    assert report["machine"]["matmul_gflops"]["float32"] > 0
    assert [r["preset"] for r in report["presets"]] == ["mlp-gan"]
    assert "x plain" in capsys.readouterr().out


def test_bench_rejects_an_unknown_preset(capsys):
    assert main(["bench", "--presets", "mlp-gan,nope"]) == 2
    assert "--presets" in capsys.readouterr().err


def test_a_batch_larger_than_half_the_data_is_capped():
    # seed 002's batch of 6,000 cannot be drawn twice from 5,000 digits: the bench halves the data
    result = bench.bench_preset({"preset": "mlp-gan", "dataset": "mnist-5k", "device": "cpu", "seconds": 0.05,
                                 "rounds": 1, "warmup": 1, "compile": False, "threads": 1, "batch_size": 4000})
    assert result["batch_size"] == 2500 and result["images"] == 5000


def test_bench_runs_every_preset_and_writes_its_json(tmp_path, capsys):
    # The README's `gankit bench` measures every preset; `default` and `fast` say --conditioning auto,
    # which each contender must resolve from the data (the digits' labels: projection).
    from gankit.presets import PRESETS

    out = tmp_path / "results" / "bench.json"
    out.parent.mkdir()
    assert main(["bench", "--seconds", "0.05", "--rounds", "1", "--warmup", "1", "--threads", "1", "--samples", "100",
                 "--batch-size", "32", "--dataset", "mnist-5k", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["preset"] for r in report["presets"]] == list(PRESETS)
    for r in report["presets"]:
        assert r["batch_size"] == 32 and r["images_per_s"]["plain"] > 0 and r["images_per_s"]["gankit fp32"] > 0, r
        assert r["sample_10k_s"] > 0
    assert report["protocol"]["sample_images"] == 100
    table = capsys.readouterr().out
    assert all(name in table for name in PRESETS)


def test_plain_loop_of_a_conditional_preset_feeds_labels():
    cfg = make_config(preset("fast"), {"dataset": "mnist-5k", "width": 8, "batch_size": 16, "conditioning": "projection"})
    data = open_dataset("mnist-5k")
    loop = bench.PlainLoop(cfg, data, torch.device("cpu"), num_classes=data.num_classes)
    assert loop.g.num_classes == 10 and loop.d.num_classes == 10
    before = [p.detach().clone() for p in loop.d.parameters()]
    loop()
    assert any(not torch.equal(a, b) for a, b in zip(before, loop.d.parameters()))


def test_plain_loop_refuses_an_unresolved_conditioning():
    cfg = make_config(preset("default"), {"width": 8})
    with pytest.raises(ValueError, match="auto"):
        bench.PlainLoop(cfg, open_dataset("mnist-5k"), torch.device("cpu"))


def test_bench_of_a_preset_with_conditioning_auto():
    # `default` is `dcgan`'s nets with --conditioning auto: on the labelled digits the bench must time
    # it as it trains, class-conditional, so each image costs the projection D's and the one-hot
    # labels' arithmetic on top of the unconditional `dcgan`'s.
    def run(name):
        return bench.bench_preset({"preset": name, "dataset": "mnist-5k", "device": "cpu", "seconds": 0.05,
                                   "rounds": 1, "warmup": 1, "compile": False, "threads": 1, "batch_size": 16,
                                   "samples": 50})
    conditional, plain_dcgan = run("default"), run("dcgan")
    for contender in ("gankit fp32", "plain"):
        assert conditional["images_per_s"][contender] > 0
        assert conditional["flops_per_image"][contender] > plain_dcgan["flops_per_image"][contender], contender
    assert conditional["sample_10k_s"] > 0
