"""SAELens v6's on-disk SAE (``cfg.json`` + ``sae_weights.safetensors``), both ways.

SAELens computes ``z = σ((x − b_dec) W_enc + b_enc)``, ``x̂ = z W_dec + b_dec`` with
``W_enc`` (d_in, d_sae) and ``W_dec`` (d_sae, d_in). An hsae level trained on ``c·x`` (the
run's scale c) is written so that it reads raw activations x (the scale folded in):

    W_enc ← c · W_encᵀ      b_dec ← b_dec / c      W_dec ← W_decᵀ / c      b_enc, θ unchanged

which gives the same code and x̂ / c of the hsae level. The encoder plugin says which SAELens
architecture it is and which tensors it adds (``Encoder.saelens_form``). Reading is the inverse
for a folder whose architecture an installed encoder plugin declares (``saelens_architecture``),
with scale 1: an imported SAE defines the space it reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hsae import registry
from hsae.errors import BadInput
from hsae.sae.sae import SAE

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
FORMAT_VERSION = "6.0.0"
"""The SAELens release whose layout is written, when SAELens itself is not installed."""


def _saelens_version() -> str:
    try:
        return metadata.version("sae-lens")
    except metadata.PackageNotFoundError:
        return FORMAT_VERSION


def level_to_saelens(sae: SAE, scale: float, meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(cfg.json content, tensors) of one hsae SAE trained on ``scale``·x, reading raw x."""
    form = sae.encoder.saelens_form(sae.b_enc)
    if form is None:
        raise BadInput(f"the {sae.encoder.config_summary()['name']!r} encoder has no SAELens equivalent")
    tensors = {
        "W_enc": sae.W_enc.t() * scale,
        "W_dec": sae.W_dec.t() / scale,
        "b_dec": sae.b_dec / scale,
        **form.tensors,
    }
    cfg = {
        "d_in": sae.n_inputs,
        "d_sae": sae.n_latents,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "architecture": form.architecture,
        **form.config,
        "metadata": {"sae_lens_version": _saelens_version(), **meta},
    }
    return cfg, {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}


def write_saelens(folder: Path, cfg: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, folder / WEIGHTS_FILE)
    (folder / CFG_FILE).write_text(json.dumps(cfg, indent=2))


# ------------------------------------------------------------------------------------- reading


@dataclass
class SAELensLevel:
    """A SAELens SAE as an hsae level: its encoder spec and the SAE's state dict (scale 1)."""

    path: Path
    encoder: dict[str, Any]
    n_inputs: int
    n_latents: int
    state: dict[str, torch.Tensor]


def _encoder_for(architecture: str, where: Path):
    """The installed encoder plugin that reads this SAELens architecture."""
    known = {}
    for name in registry.names("hsae.encoders"):
        cls = registry.load("hsae.encoders", name)
        if getattr(cls, "saelens_architecture", None):
            known.setdefault(cls.saelens_architecture, (name, cls))
    if architecture not in known:
        raise BadInput(f"{where / CFG_FILE}: architecture {architecture!r} is not read by any installed encoder; "
                       f"readable: {', '.join(sorted(known))}")
    return known[architecture]


def _read_cfg(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise BadInput(f"{path}: no such SAELens folder (it must hold {CFG_FILE} and {WEIGHTS_FILE})")
    for name in (CFG_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise BadInput(f"{path}: {name} is missing; a SAELens folder holds {CFG_FILE} and {WEIGHTS_FILE}")
    try:
        cfg = json.loads((path / CFG_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path / CFG_FILE}: not JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise BadInput(f"{path / CFG_FILE}: expected a JSON object")
    return cfg


def read_saelens_config(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cfg.json, the hsae encoder spec {name, options}) of a SAELens v6 folder, without its weights."""
    path = Path(path)
    cfg = _read_cfg(path)
    for key in ("d_in", "d_sae", "architecture"):
        if key not in cfg:
            raise BadInput(f"{path / CFG_FILE}: key {key!r} is missing")
    for key, expected in (("normalize_activations", "none"), ("reshape_activations", "none")):
        if cfg.get(key, "none") != expected:
            raise BadInput(f"{path / CFG_FILE}: {key} is {cfg[key]!r}; only {expected!r} can be imported "
                           "(fold the normalisation into the weights first)")
    name, cls = _encoder_for(cfg["architecture"], path)
    try:
        options = cls.saelens_options(cfg)
    except ValueError as exc:
        raise BadInput(f"{path / CFG_FILE}: {exc}") from None
    return cfg, {"name": name, **options}


def read_saelens(path: str | Path) -> SAELensLevel:
    """A SAELens v6 folder as an hsae level (BadInput naming the file and key when it cannot be read)."""
    path = Path(path)
    cfg, encoder = read_saelens_config(path)
    try:
        tensors = {k: v.float() for k, v in load_file(path / WEIGHTS_FILE).items()}
    except (SafetensorError, OSError) as exc:
        raise BadInput(f"{path / WEIGHTS_FILE}: not a safetensors file ({exc})") from None
    d, n = int(cfg["d_in"]), int(cfg["d_sae"])
    for key, shape in {"W_enc": (d, n), "W_dec": (n, d), "b_dec": (d,)}.items():
        if key not in tensors:
            raise BadInput(f"{path / WEIGHTS_FILE}: tensor {key!r} is missing")
        if tuple(tensors[key].shape) != shape:
            raise BadInput(f"{path / WEIGHTS_FILE}: {key} has shape {tuple(tensors[key].shape)}, "
                           f"cfg.json's d_in/d_sae say {shape}")
    try:
        b_enc, encoder_state = registry.load("hsae.encoders", encoder["name"]).from_saelens(tensors)
    except KeyError as exc:
        raise BadInput(f"{path / WEIGHTS_FILE}: tensor {exc.args[0]!r} of a {cfg['architecture']} SAE is missing") from None
    W_enc = tensors["W_enc"]
    if not cfg.get("apply_b_dec_to_input", True):  # σ(x W_enc + b_enc) = σ((x − b_dec) W_enc + b_enc + b_dec W_enc)
        b_enc = b_enc + tensors["b_dec"] @ W_enc
    state = {"W_enc": W_enc.t(), "b_enc": b_enc, "W_dec": tensors["W_dec"].t(), "b_dec": tensors["b_dec"],
             **{f"encoder.{k}": v for k, v in encoder_state.items()}}
    return SAELensLevel(path, encoder, d, n, state)


@torch.no_grad()
def load_into(sae: SAE, level: SAELensLevel) -> None:
    """Copy an imported SAE's tensors into ``sae`` (built with ``level.encoder`` and its widths)."""
    if (sae.n_inputs, sae.n_latents) != (level.n_inputs, level.n_latents):
        raise BadInput(f"{level.path}: the SAE is {level.n_inputs} → {level.n_latents}, the level it fills is "
                       f"{sae.n_inputs} → {sae.n_latents}")
    params = dict(sae.named_parameters()) | dict(sae.named_buffers())
    for key, value in level.state.items():
        params[key].copy_(value)
