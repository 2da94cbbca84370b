"""``hsae export RUN OUT --format saelens``: every level of a finished run that is an SAE on the
activations, as a SAELens v6 folder (``hsae.interop.saelens``), with the run's hierarchy.json
and labels.json beside them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hsae.errors import BadInput
from hsae.interop.saelens import level_to_saelens, write_saelens
from hsae.store import ActivationStore
from hsae.trained import LABELS_FILE, load
from hsae.version import __version__


def _store_names(config: dict) -> dict[str, Any]:
    """``model_name`` and ``hook_name`` from the store's ``model`` and ``layer`` attributes (None when absent)."""
    attrs: dict[str, Any] = {}
    path = Path(config.get("store", ""))
    if path.is_file():
        with ActivationStore(path) as store:
            attrs = store.attrs
    layer = attrs.get("hook_name", attrs.get("layer"))
    return {"model_name": attrs.get("model"), "hook_name": None if layer is None else str(layer)}


def export_run(run_dir: Path, out: Path) -> list[Path]:
    """One SAELens folder per level of a finished run that is an SAE on the activations
    (``out/level-{l}/``), with the run's ``hierarchy.json`` and ``labels.json`` beside them."""
    trained = load(run_dir)
    names = _store_names(trained.config)
    written = []
    for l in range(1, trained.depth + 1):
        sae = trained.sae(l)
        if sae is None:
            continue
        meta = {**names, "hsae_version": __version__, "hsae_run": str(trained.root.resolve()), "hsae_level": l,
                "hsae_method": trained.method}
        folder = out / f"level-{l}"
        write_saelens(folder, *level_to_saelens(sae, trained.scale, meta))
        written.append(folder)
    if not written:
        raise BadInput(f"{run_dir}: no level of this {trained.method} model is an SAE on the activations")
    for name in ("hierarchy.json", LABELS_FILE):
        if (trained.root / name).exists():
            shutil.copyfile(trained.root / name, out / name)
    return written
