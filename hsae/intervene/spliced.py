"""Spliced evaluation: the model's next-token loss with its level-1 SAE written back.

On held-out images shown with the run's extraction prompt, followed by the clean model's own
greedy answer (``continuation`` tokens, teacher-forced; 0: the prompt alone), the scored
positions are the text positions (``Extractor.token_logits``). Three passes per batch:

    CE_clean   no hook
    CE_sae     the module's output replaced as ``write_back`` says (``hsae.intervene.write_back``)
    CE_zero    the module's output replaced by zeros

    loss recovered = (CE_zero − CE_sae) / (CE_zero − CE_clean)
    KL         = mean over positions of KL(p_clean ‖ p_sae) (and of p_zero, for scale)

Cross-entropies are means over all scored positions of all images (token-weighted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from hsae.concepts.top_images import image_names
from hsae.intervene.held_out import draw, held_out_numbers, image_dataset, images_at
from hsae.intervene.run_model import RunModel
from hsae.intervene.write_back import Splice, spliced

Progress = Callable[[int, int], None]


class SplicedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: dict[str, Any] | None = Field(
        None, description="image dataset; default: the run's steer.images, else its extraction dataset, "
        "less its training images")
    exclude_training: bool = True
    n_images: int = Field(32, ge=1)
    seed: int = 0
    continuation: int = Field(16, ge=0, description="greedy tokens of the clean model appended and scored")
    batch_size: int = Field(4, ge=1)
    write_back: Literal["reconstruction", "error_preserving"] = "reconstruction"
    code: Literal["encoder", "relu"] = "encoder"
    extractor: dict[str, Any] = Field(default_factory=dict, description="extractor options to override, e.g. {device: cuda}")


class _Sums:
    """Running sums of the negative log-likelihood and the KL to the clean distribution."""

    def __init__(self) -> None:
        self.nll, self.kl, self.positions = 0.0, 0.0, 0

    def add(self, logp: torch.Tensor, clean_logp: torch.Tensor, targets: torch.Tensor) -> None:
        """``logp``, ``clean_logp`` (P, V) log-probabilities at the scored positions; ``targets`` (P,)."""
        self.nll -= float(logp.gather(1, targets[:, None]).sum())
        self.kl += float(F.kl_div(logp, clean_logp, log_target=True, reduction="sum"))
        self.positions += targets.numel()

    def ce(self) -> float:
        return self.nll / self.positions

    def mean_kl(self) -> float:
        return self.kl / self.positions


def loss_recovered(ce_clean: float, ce_sae: float, ce_zero: float) -> float | None:
    denominator = ce_zero - ce_clean
    return (ce_zero - ce_sae) / denominator if denominator != 0 else None


@torch.no_grad()
def spliced_evaluation(rm: RunModel, config: SplicedConfig, progress: Progress | None = None) -> dict:
    """CE clean / spliced / zero-ablated, loss recovered and KL of the run's level-1 SAE."""
    extractor = rm.extractor(config.extractor)
    module = extractor.target_module
    sae = rm.sae.sae.to(next(module.parameters()).device)
    spec = config.images or (rm.tree.get("steer") or {}).get("images") or rm.dataset_spec()
    dataset = image_dataset(spec, "spliced evaluation images")
    training: set[str] = set()
    if config.exclude_training:
        with rm.store() as store:
            training = set(image_names(store))
    (numbers,) = draw(held_out_numbers(dataset, training), 1, config.n_images, config.seed,
                   "spliced evaluation (--option images='{name: ..., <options>}' names other images)")
    items = images_at(dataset, numbers)
    prompt = extractor.config.prompt
    splices = {"sae": Splice(sae, rm.scale, config.write_back, config.code), "zero": Splice(sae, rm.scale, "zero")}
    sums = {"clean": _Sums(), "sae": _Sums(), "zero": _Sums()}
    for start in range(0, len(numbers), config.batch_size):
        images = [items[n].image for n in numbers[start:start + config.batch_size]]
        answers = extractor.generate(images, prompt, config.continuation) if config.continuation else None
        clean = extractor.token_logits(images, prompt, answers)
        mask, targets = clean.mask, clean.targets[clean.mask]
        clean_logp = clean.logits[mask].float().log_softmax(-1)
        sums["clean"].add(clean_logp, clean_logp, targets)
        for name, splice in splices.items():
            with spliced(module, splice):
                out = extractor.token_logits(images, prompt, answers)
            sums[name].add(out.logits[mask].float().log_softmax(-1), clean_logp, targets)
        if progress is not None:
            progress(min(start + config.batch_size, len(numbers)), len(numbers))
    ce = {name: s.ce() for name, s in sums.items()}
    return {
        "images": len(numbers), "positions": sums["clean"].positions, "write_back": config.write_back, "code": config.code,
        "ce_clean": ce["clean"], "ce_sae": ce["sae"], "ce_zero": ce["zero"],
        "loss_recovered": loss_recovered(ce["clean"], ce["sae"], ce["zero"]),
        "kl_sae": sums["sae"].mean_kl(), "kl_zero": sums["zero"].mean_kl(),
        "dataset": spec, "image_ids": [items[n].image_id for n in numbers],
    }
