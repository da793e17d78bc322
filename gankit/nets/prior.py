"""A pretrained prior: G and D weights that ship with gankit, for runs that start from them (--init prior).

A prior file is safetensors: G's tensors under "generator.", D's under "discriminator.", stored in
bf16 (integer buffers as they are), and in its metadata the net fields that fix the tensors'
shapes (NET_FIELDS) and the format. Beside it, a JSON file of the same name says where it came
from: the pictures and their licence, the command that made it, and its quality curve
(benchmarks/pretrain_prior.py writes both).

A run with --init prior builds its nets as usual, then copies the prior into them. Class-conditional
nets take it too: their extra parts are learnt fresh (G's one-hot inputs start at zero, so at the
first step G draws what the prior draws; D's class embedding or head keeps its init).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from gankit.errors import UserError
from gankit.nets.spec import NetSpec, flag

FORMAT = "gankit-prior/1"
PRIOR_DIR = Path(__file__).resolve().parent.parent / "weights"
# The NetSpec fields that decide which tensors the nets have and their shapes.
NET_FIELDS = ("arch", "image_shape", "latent_dim", "width", "g_upsample", "d_mbstd", "spectral_norm")
# Where the class-conditional wrappers keep what an unconditional net lacks (gankit/nets/conditional.py).
_CONDITIONING_ONLY = ("condition.",)


def prior_path(side: int, folder: Path | None = None) -> Path:
    return (folder or PRIOR_DIR) / f"colour-prior-{side}.safetensors"


def available_sides(folder: Path | None = None) -> list[int]:
    return sorted(int(p.stem.rsplit("-", 1)[1]) for p in (folder or PRIOR_DIR).glob("colour-prior-*.safetensors"))


def write_prior(g: nn.Module, d: nn.Module, spec: NetSpec, path: Path, about: dict) -> Path:
    """Save unconditional (G, D) built from `spec` as a prior file, and `about` (provenance) beside it."""
    from safetensors.torch import save_file

    tensors = {}
    for prefix, net in (("generator.", g), ("discriminator.", d)):
        for key, value in net.state_dict().items():
            value = value.detach().cpu()
            tensors[prefix + key] = (value.to(torch.bfloat16) if value.is_floating_point() else value).contiguous()
    net = {f: getattr(spec, f) for f in NET_FIELDS}
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors files keep their tensors sorted by name; the nets' own order is what _copy_in_order needs
    save_file(tensors, str(path),
              metadata={"format": FORMAT, "net": json.dumps(net), "order": json.dumps(list(tensors))})
    path.chmod(0o644)  # (safetensors writes its files for the owner alone; a shipped file is read by anyone)
    path.with_suffix(".json").write_text(json.dumps({**about, "net": net}, indent=2) + "\n", encoding="utf-8")
    return path


def _read_metadata(path: Path) -> dict:
    """A prior file's metadata (its header alone, not its tensors), checked to be a prior's."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a gankit prior (format {meta.get('format')!r}, expected {FORMAT})")
    return meta


def _net_fields(meta: dict) -> dict:
    net = json.loads(meta["net"])
    net["image_shape"] = tuple(net["image_shape"])
    return net


def read_prior(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors in the nets' order, net fields) of a prior file."""
    from safetensors.torch import load_file

    meta = _read_metadata(path)
    tensors = load_file(str(path))
    return {k: tensors[k] for k in json.loads(meta["order"])}, _net_fields(meta)


def check_prior_fits(spec: NetSpec, folder: Path | None = None) -> Path:
    """The prior file for `spec`, or UserError naming the flag that stops it (nothing is changed)."""
    channels, side, _ = spec.image_shape
    if channels != 3:
        what = "greyscale" if channels == 1 else "with transparency (--alpha keep)"
        fix = ("train from scratch (drop --init prior)" if channels == 1
               else "pass --alpha white (or drop --init prior)")
        raise UserError(f"--init prior: the prior draws colour pictures (3 channels); these are {what}: {fix}")
    if folder is not None and not folder.is_dir():
        raise UserError(f"--prior-dir {folder}: no such folder; name the one benchmarks/pretrain_prior.py "
                        "--weights wrote, or drop --prior-dir for the priors gankit ships")
    sides = available_sides(folder)
    if folder is not None and not sides:
        raise UserError(f"--prior-dir {folder} holds no colour-prior-SIDE.safetensors: name the folder "
                        "benchmarks/pretrain_prior.py --weights wrote, or drop --prior-dir")
    if side not in sides:
        where = "gankit ships" if folder is None else f"--prior-dir {folder} holds"
        raise UserError(f"--init prior: {where} a prior at {', '.join(map(str, sides)) or 'no size'} px, "
                        f"not {side}: pass --image-size {min(sides, key=lambda s: abs(s - side)) if sides else 32} "
                        "(or drop --init prior)")
    path = prior_path(side, folder)
    net = _net_fields(_read_metadata(path))
    differs = [f for f in NET_FIELDS if f != "image_shape" and net[f] != getattr(spec, f)]
    if differs:
        wanted = ", ".join(f"{flag(f)} {net[f]}" for f in differs)
        raise UserError(f"--init prior: the prior's nets differ from these in {', '.join(map(flag, differs))}: "
                        f"pass {wanted} (the colour preset's nets), or drop --init prior")
    return path


def load_prior(g: nn.Module, d: nn.Module, spec: NetSpec, folder: Path | None = None) -> Path:
    """Copy the prior into (G, D) in place, and return its path."""
    path = check_prior_fits(spec, folder)
    tensors, _ = read_prior(path)
    for prefix, net in (("generator.", g), ("discriminator.", d)):
        source = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        _copy_in_order(source, net, path)
    return path


def _copy_in_order(source: dict[str, torch.Tensor], net: nn.Module, path: Path) -> None:
    """Copy an unconditional net's tensors into `net`, which may be the conditional wrapping of
    the same layers: its own keys are renamed (net.*, body.*, head.*) but come in the same order,
    and its first layer may take more inputs (the one-hot labels), whose weights start at zero."""
    own = net.state_dict()
    targets = [k for k in own if not k.startswith(_CONDITIONING_ONLY)]
    if len(targets) != len(source):
        raise UserError(f"{path}: its nets have {len(source)} tensors where these have {len(targets)}; "
                        "the file does not belong to this version of gankit")
    with torch.no_grad():
        for key, (_, value) in zip(targets, source.items()):
            into = own[key]
            if into.shape == value.shape:
                into.copy_(value.to(into.dtype))
            elif into.dim() == value.dim() and into.dim() > 0 and into.shape[1:] == value.shape[1:] \
                    and into.shape[0] > value.shape[0]:
                into.zero_()  # G's input takes [z, one-hot y]: the labels' weights are learnt from zero
                into[: value.shape[0]].copy_(value.to(into.dtype))
            else:
                raise UserError(f"{path}: tensor {key} is {tuple(value.shape)} there, {tuple(into.shape)} here; "
                                "the file does not belong to these nets")


def freeze_lower_layers(net: nn.Module, convolutions: int, flag: str = "--freeze-d", name: str = "D",
                        labels_from: int | None = None) -> None:
    """Keep `net`'s first `convolutions` convolutions (plain or transposed), and every layer between
    them (BatchNorms), as they start: D's (FreezeD, Mo et al. 2020) or G's, those nearest the latent,
    which lay out the picture while the later ones draw its texture and colour. Running statistics
    still follow the data. `flag` and `name` (D, G) name the option and the net in errors.

    `labels_from`: a class-conditional G's first layer takes [z, one-hot labels], and the prior has no
    weights for the labels (they start at zero): its input channels from this one on keep learning,
    the others' gradients are zeroed (Adam then leaves them where they are)."""
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    if convolutions >= len(convs):
        raise UserError(f"{flag} {convolutions}: {name} has {len(convs)} convolutions and its last must learn; "
                        f"pass at most {flag} {len(convs) - 1}")
    seen = 0
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            seen += 1
            if seen > convolutions:
                return
            if seen == 1 and labels_from is not None:
                _learn_only_inputs_from(module, labels_from)
                continue
        if seen and not list(module.children()):
            for param in module.parameters(recurse=False):
                param.requires_grad_(False)


def _learn_only_inputs_from(conv: nn.Module, first: int) -> None:
    """Zero the gradient of `conv`'s weights for input channels before `first` (a transposed conv's
    weight is [in, out, k, k], a conv's [out, in, k, k])."""
    mask = torch.zeros_like(conv.weight)
    (mask[first:] if isinstance(conv, nn.ConvTranspose2d) else mask[:, first:]).fill_(1)
    conv.weight.register_hook(lambda grad: grad * mask)
    if conv.bias is not None:
        conv.bias.requires_grad_(False)


def unconditional(spec: NetSpec) -> NetSpec:
    """The spec of the nets a prior is made of: `spec` without its labels."""
    return dataclasses.replace(spec, conditioning="none", num_classes=0)
