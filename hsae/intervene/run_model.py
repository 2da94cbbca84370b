"""A finished run opened for interventions: its model's SAE, scale, store and extractor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hsae import registry
from hsae.errors import BadInput
from hsae.interfaces.extractor import Extractor
from hsae.intervene.model_sae import ModelSAE, model_sae
from hsae.run.run_dir import RunDir
from hsae.store import ActivationStore


@dataclass
class RunModel:
    run: RunDir
    tree: dict
    sae: ModelSAE
    scale: float
    store_path: Path

    @classmethod
    def open(cls, root: Path) -> "RunModel":
        run = RunDir(Path(root))
        model, config = run.load_model()
        tree = run.read_recipe_tree() or {}
        return cls(run, tree, model_sae(model), float(config["scale"]), Path(config["store"]))

    def store(self) -> ActivationStore:
        return ActivationStore(self.store_path)

    def extract_section(self) -> dict[str, Any]:
        section = self.tree.get("extract")
        if not isinstance(section, dict):
            raise BadInput(f"{self.run.recipe}: the run has no extract section, so there is no model to write its SAE "
                           "back into (steering and spliced evaluation need a run extracted from a model)")
        return section

    def extractor(self, overrides: dict[str, Any] | None = None) -> Extractor:
        """The run's extractor plugin (model and layer of its activations), options overridden."""
        spec = {**self.extract_section()["extractor"], **(overrides or {})}
        extractor = registry.create("hsae.extractors", spec)
        extractor.load()
        if extractor.width != self.sae.sae.n_inputs:
            raise BadInput(f"{self.run.root}: the SAE reads rows of width {self.sae.sae.n_inputs}, but layer "
                           f"{spec.get('layer')!r} of {spec.get('model')!r} gives {extractor.width}")
        return extractor

    def dataset_spec(self) -> dict[str, Any]:
        """The image dataset the run's activations were extracted from."""
        return dict(self.extract_section()["dataset"])
