"""`gankit bench`: training and sampling speed of every preset on this machine, beside a plain loop.

For each preset, in a fresh child process (so that its peak memory is its own):
  * gankit's own step (`Run.train_step` plus its per-step divergence check), at float32 and, where
    the hardware has it natively, at bfloat16;
  * a plain loop written the way the tutorials write it (`PlainLoop`): a DataLoader over the same
    images as float32, the same nets, batch and loss, PyTorch's default Adam, `.item()` on both
    losses every step;
and, in turns of `seconds` each for `rounds` rounds (so that a slow spell of the machine hits every
contender alike), images per second of each. FLOPs per training image are counted with
torch.utils.flop_counter on one real step of each contender (matrix products and convolutions,
forward and backward), and set against this machine's measured matmul rate: the share of the
arithmetic the machine can do that the loop turns into training.
"""

from __future__ import annotations

import json
import multiprocessing
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from gankit.training.compute import dtype_name

SAMPLE_COUNT = 10_000  # images drawn for the sampling figure (`--samples`); it is reported as the time for 10k


def cpu_field(key: str) -> str | None:
    """A field of the first CPU in /proc/cpuinfo ('model name', 'vendor_id'), or None where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == key:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, seconds: float = 1.5) -> float:
    """Sustained rate of n x n matrix products, in GFLOP/s (2 n^3 per product)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
        if device.type == "cuda" and count % 10:
            continue
        _sync(device)
    _sync(device)
    return 2 * n ** 3 * count / (time.perf_counter() - start) / 1e9


def machine_rates(device: torch.device, dtypes: list[torch.dtype], seconds: float = 1.5) -> dict[str, float]:
    """The best of a few matrix sizes: the denominator of every 'share of the machine' figure."""
    return {dtype_name(dt): round(max(matmul_gflops(device, dt, n, seconds) for n in (1024, 2048)), 1)
            for dt in dtypes}


def flops_per_call(fn) -> int:
    """Matrix-product and convolution FLOPs of one call of `fn` (forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


class PlainLoop:
    """The reference: one step as the tutorials write it (pytorch/examples' dcgan, seed 002).

    Same nets (gankit.nets.build from the same config), batch, loss, targets and order of updates
    as gankit; only the engineering differs. Label flips and instance noise are left out (no preset
    uses them); seed 000's split D update is kept, since it changes the arithmetic. A class-
    conditional config (`cfg.conditioning` resolved: "projection" or "acgan", never "auto") feeds
    the data's labels to D and uniform random labels to G, as the cGAN tutorials do.
    """

    def __init__(self, cfg, data, device: torch.device, num_classes: int = 0):
        from torch.utils.data import DataLoader, TensorDataset

        from gankit.images import to_float
        from gankit.nets import build
        from gankit.nets.spec import net_spec
        from gankit.training.losses import LOSSES

        if cfg.conditioning == "auto":
            raise ValueError("PlainLoop needs a resolved --conditioning (the gankit run's cfg), not 'auto'")
        self.cfg, self.device, self.loss = cfg, device, LOSSES[cfg.loss]
        self.num_classes = num_classes if cfg.conditioning != "none" else 0
        if self.num_classes and data.labels is None:
            raise ValueError(f"--conditioning {cfg.conditioning} needs labelled images")
        torch.manual_seed(cfg.seed)
        self.g, self.d = build(net_spec(cfg, data.image_shape, self.num_classes))
        self.g.to(device)
        self.d.to(device)
        self.acgan = cfg.conditioning == "acgan" and self.num_classes > 0
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=cfg.lr_g, betas=(cfg.beta1_g, cfg.beta2_g))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr_d, betas=(cfg.beta1_d, cfg.beta2_d))
        tensors = (to_float(data.images),) + ((data.labels,) if self.num_classes else ())
        self.loader = DataLoader(TensorDataset(*tensors), batch_size=cfg.batch_size, shuffle=True, drop_last=True)
        self.batches = iter(self.loader)
        self.images_per_step = cfg.batch_size * cfg.d_steps

    def _real(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        try:
            batch = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            batch = next(self.batches)
        real = batch[0].to(self.device)
        return real, (batch[1].to(self.device) if self.num_classes else None)

    def _z(self, n: int) -> torch.Tensor:
        from gankit.nets.latents import sample_latent
        return sample_latent(n, self.cfg.latent_dim, self.cfg.latent_dist, self.device)

    def _y(self, n: int) -> torch.Tensor | None:
        return torch.randint(0, self.num_classes, (n,), device=self.device) if self.num_classes else None

    @staticmethod
    def _call(net, x: torch.Tensor, y: torch.Tensor | None):
        return net(x) if y is None else net(x, y)

    def _judge(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits and its class loss (zero unless ACGAN)."""
        import torch.nn.functional as F

        out = self._call(self.d, x, y)
        if self.acgan:
            logits, class_logits = out
            return logits, F.cross_entropy(class_logits, y)
        return out, torch.zeros((), device=self.device)

    def __call__(self) -> None:
        cfg, loss, g = self.cfg, self.loss, self.g
        w = cfg.acgan_weight
        for _ in range(cfg.d_steps):
            real, real_y = self._real()
            n = real.shape[0]
            real_t = torch.full((n,), cfg.real_label, device=self.device)
            fake_t = torch.full((n,), cfg.fake_label, device=self.device)
            fake_y = self._y(n)
            fake = self._call(g, self._z(n), fake_y)
            if cfg.d_split_update:
                self.opt_d.zero_grad()
                logits, cls = self._judge(real, real_y)
                half = loss.real_term(logits, real_t) + w * cls
                half.backward()
                self.opt_d.step()
                self.opt_d.zero_grad()
                logits, cls = self._judge(fake.detach(), fake_y)
                other = loss.fake_term(logits, fake_t) + w * cls
                other.backward()
                self.opt_d.step()
                d_loss = half.item() + other.item()
            else:
                self.opt_d.zero_grad()
                real_logits, real_cls = self._judge(real, real_y)
                fake_logits, fake_cls = self._judge(fake.detach(), fake_y)
                d_loss = loss.d_loss(real_logits, fake_logits, real_t, fake_t) + w * (real_cls + fake_cls)
                if loss.gradient_penalty:
                    from gankit.training.losses import gradient_penalty
                    d_loss = d_loss + cfg.gp_weight * gradient_penalty(
                        lambda x: self._judge(x, real_y)[0], real, fake)
                d_loss.backward()
                self.opt_d.step()
                d_loss = d_loss.item()
        if not cfg.reuse_fakes:
            fake_y = self._y(cfg.batch_size)
            fake = self._call(g, self._z(cfg.batch_size), fake_y)
        self.opt_g.zero_grad()
        logits, cls = self._judge(fake, fake_y)
        real_logits = self._judge(real, real_y)[0] if loss.relativistic else None  # RpGAN pairs fakes with reals
        g_loss = loss.generator_loss(logits, real_logits) + w * cls
        g_loss.backward()
        self.opt_g.step()
        g_loss = g_loss.item()


@dataclass
class Contender:
    """One way of training, timed in turns with the others."""

    name: str
    step: object  # callable: one training step
    images_per_step: int
    images: int = 0
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def _gankit_contender(cfg, name: str) -> tuple[Contender, object]:
    from gankit.training.loop import Run
    from gankit.training.step import GANStep

    with tempfile.TemporaryDirectory() as tmp:  # Run writes nothing until fit(); the folder is never used
        run = Run(cfg, Path(tmp) / "bench", quiet=True)
    stats = GANStep.zero_stats()

    def step():
        d_loss, g_loss = run.train_step(stats)
        run.guard.check(d_loss, g_loss, run.device.type == "cpu")

    return Contender(name, step, cfg.batch_size * cfg.d_steps), run


def bench_preset(job: dict) -> dict:
    """Everything measured for one preset (runs in a child process; see module docstring)."""
    from gankit.config import make_config
    from gankit.nets.latents import generate, sample_latent
    from gankit.presets import preset
    from gankit.training.compute import native_bf16, resolve_precision
    from gankit.training.loop import open_data

    torch.set_num_threads(job["threads"])
    layer = {"dataset": job["dataset"], "device": job["device"], "tensorboard": "off", "report": False}
    if job.get("batch_size"):
        layer["batch_size"] = job["batch_size"]
    base = make_config(preset(job["preset"]), layer)
    size = len(open_data(base))
    if base.batch_size * base.d_steps > size // 2:  # seed 002's batch of 6,000 on the 5,000 digits
        base = make_config(base.to_dict(), {"batch_size": max(1, size // (2 * base.d_steps))})
    fp32_cfg = make_config(base.to_dict(), {"precision": "fp32"})
    first, run = _gankit_contender(fp32_cfg, "gankit fp32")
    device = run.device
    contenders = [first]
    if native_bf16(device) or job.get("force_bf16"):
        contenders.append(_gankit_contender(make_config(base.to_dict(), {"precision": "bf16"}), "gankit bf16")[0])
    if job.get("compile"):
        best = "bf16" if len(contenders) > 1 else "fp32"
        contenders.append(_gankit_contender(make_config(base.to_dict(), {"precision": best, "compile": True}),
                                            f"gankit {best} compile")[0])
    flops = {}

    def warm_up(c: Contender) -> None:
        for _ in range(job["warmup"]):  # first calls pay for allocation, autotuning, compiling
            c.step()
        if "compile" not in c.name:  # FLOPs are counted on the eager version of the same step
            flops[c.name] = flops_per_call(c.step) / c.images_per_step

    for c in contenders:
        warm_up(c)
    _sync(device)
    rss_gankit = _peak_rss_mb()  # before the plain loop's float32 copy of the data exists
    # The plain loop gets the run's resolved config: --conditioning auto becomes projection or none
    # from the data's labels, and both contenders then train the same (conditional or not) nets.
    plain = PlainLoop(replace(base, conditioning=run.cfg.conditioning), run.data, device, run.num_classes)
    contenders.append(Contender("plain", plain, plain.images_per_step))
    warm_up(contenders[-1])
    _sync(device)
    rss_after_warmup = _peak_rss_mb()
    for _ in range(job["rounds"]):
        for c in contenders:
            start = time.perf_counter()
            while time.perf_counter() - start < job["seconds"]:
                c.step()
                c.images += c.images_per_step
            _sync(device)
            c.seconds += time.perf_counter() - start

    count = job.get("samples") or SAMPLE_COUNT
    z = sample_latent(count, base.latent_dim, base.latent_dist)
    y = torch.randint(0, run.num_classes, (count,)) if run.num_classes else None  # a conditional G
    generate(run.state.g, z[:500], device, y=None if y is None else y[:500])  # warm-up
    start = time.perf_counter()
    generate(run.state.g, z, device, y=y)
    sample_s = time.perf_counter() - start

    result = {
        "preset": job["preset"], "dataset": run.data.name, "images": len(run.data),
        "batch_size": base.batch_size, "d_steps": base.d_steps, "reuse_fakes": base.reuse_fakes,
        "device": str(device), "default_precision": dtype_name(resolve_precision(base.precision, device)),
        "images_per_s": {c.name: round(c.images_per_s, 1) for c in contenders},
        "flops_per_image": {k: round(v) for k, v in flops.items()},
        "sample_images_per_s": round(count / sample_s, 1),
        "sample_10k_s": round(sample_s * 10_000 / count, 3),  # measured on `count` images
        "data_mb": round(run.data.images.numel() * run.data.images.element_size() / 2 ** 20, 1),
        "peak_rss_mb_gankit": round(rss_gankit, 1),  # the process with gankit's runs only
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_growth_while_timed_mb": round(_peak_rss_mb() - rss_after_warmup, 1),
    }
    if device.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
    return result


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 2 ** 10  # bytes on macOS, KiB on Linux


def default_dataset() -> str:
    """Fashion-MNIST (what most presets train on) where it is found without downloading, else
    the embedded digits; both are 28x28 grey, so the arithmetic is the same."""
    from gankit.data import describe_datasets
    for name, _about, where in describe_datasets():
        if name == "fashion-mnist" and where.startswith("found"):
            return name
    return "mnist-5k"


def run_benchmark(presets: list[str], *, dataset: str, device: str, seconds: float, rounds: int,
                  warmup: int, compile: bool, threads: int, progress=print, samples: int = SAMPLE_COUNT,
                  batch_size: int | None = None) -> dict:
    """Measure every preset (each in its own child process) and the machine's matmul rates.
    `samples`: images drawn for the sampling time (reported per 10k); `batch_size`: replaces
    every preset's own."""
    from gankit.training.compute import native_bf16, pick_device

    torch.set_num_threads(threads)
    dev = pick_device(device)
    dtypes = [torch.float32] + ([torch.bfloat16] if native_bf16(dev) else [])
    rates_before = machine_rates(dev, dtypes, min(1.5, seconds))
    results = []
    ctx = _child_context()
    for name in presets:
        job = {"preset": name, "dataset": dataset, "device": device, "seconds": seconds, "rounds": rounds,
               "warmup": warmup, "compile": compile, "threads": threads, "samples": samples,
               "batch_size": batch_size}
        with ctx.Pool(1) as pool:
            results.append(pool.apply(bench_preset, (job,)))
        progress(f"{name}: " + ", ".join(f"{k} {v:,.0f} img/s" for k, v in results[-1]["images_per_s"].items()))
    rates_after = machine_rates(dev, dtypes, min(1.5, seconds))
    rates = {k: max(rates_before[k], rates_after[k]) for k in rates_before}
    for r in results:
        _add_ratios(r, rates)
    return {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads": threads, "device": str(dev),
                    "matmul_gflops": rates, "matmul_gflops_before": rates_before,
                    "matmul_gflops_after": rates_after},
        "protocol": {"dataset": dataset, "seconds_per_turn": seconds, "rounds": rounds,
                     "warmup_steps": warmup, "sample_images": samples,
                     "batch_size": batch_size or "each preset's own"},
        "presets": results,
    }


def _child_context():
    """Where each preset is measured: a child process of its own, so that its peak memory is its
    own. Where the platform has it (Linux, macOS), children fork from a server process that has
    imported PyTorch and what building an optimiser imports (torch._dynamo) once: importing
    them anew took each child 4-7 s on a 2-core CPU. Elsewhere, spawned fresh interpreters."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "torch._dynamo", "gankit.bench", "gankit.training.loop"])
        return ctx
    return multiprocessing.get_context("spawn")


def _add_ratios(result: dict, rates: dict[str, float]) -> None:
    """Speed-up over the plain loop, and the share of the matmul rate of the contender's dtype."""
    plain = result["images_per_s"]["plain"]
    result["speedup_vs_plain"] = {k: round(v / plain, 3) for k, v in result["images_per_s"].items()
                                  if k != "plain" and plain}
    share = {}
    for name, ips in result["images_per_s"].items():
        flops = result["flops_per_image"].get(name) or result["flops_per_image"].get(name.replace(" compile", ""))
        rate = rates.get("bfloat16" if "bf16" in name else "float32")
        if flops and rate:
            share[name] = round(ips * flops / 1e9 / rate, 3)
    result["share_of_matmul_rate"] = share


def format_table(report: dict) -> str:
    """A fixed-width table of the results (the README's table)."""
    rates = report["machine"]["matmul_gflops"]
    lines = ["matmul rate: " + ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in rates.items())
             + f"; {report['machine']['threads']} threads, torch {report['machine']['torch']}"]
    head = (f"{'preset':<16}{'batch':>6}{'MFLOP/img':>10}{'plain img/s':>12}{'fp32 img/s':>11}{'x plain':>8}"
            f"{'% fp32':>7}{'bf16 img/s':>11}{'x plain':>8}{'% bf16':>7}{'10k samples':>12}{'peak MB':>8}")
    lines += [head, "-" * len(head)]
    for r in report["presets"]:
        ips, up, share = r["images_per_s"], r["speedup_vs_plain"], r["share_of_matmul_rate"]

        def cell(name, value, width, fmt):
            return f"{format(value, fmt):>{width}}" if name in ips else f"{'-':>{width}}"

        lines.append(
            f"{r['preset']:<16}{r['batch_size']:>6}{r['flops_per_image']['gankit fp32'] / 1e6:>10.1f}"
            f"{ips['plain']:>12,.0f}"
            f"{ips['gankit fp32']:>11,.0f}{up['gankit fp32']:>8.2f}{100 * share['gankit fp32']:>6.0f}%"
            + cell("gankit bf16", ips.get("gankit bf16", 0), 11, ",.0f")
            + cell("gankit bf16", up.get("gankit bf16", 0), 8, ".2f")
            + (f"{100 * share['gankit bf16']:>6.0f}%" if "gankit bf16" in share else f"{'-':>7}")
            + f"{r['sample_10k_s']:>11.2f}s{r['peak_rss_mb_gankit']:>8.0f}")
    extra = [f"  {r['preset']}: " + ", ".join(f"{k} {v:,.0f} img/s (x{r['speedup_vs_plain'][k]:.2f})"
                                              for k, v in r["images_per_s"].items() if "compile" in k)
             for r in report["presets"] if any("compile" in k for k in r["images_per_s"])]
    if extra:
        lines += ["with torch.compile:"] + extra
    return "\n".join(lines)


def write_json(report: dict, path: Path) -> None:
    from gankit.atomic import atomic_write_text
    atomic_write_text(Path(path), json.dumps(report, indent=2) + "\n")
