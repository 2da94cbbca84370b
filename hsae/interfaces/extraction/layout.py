"""Split a hooked module's output into one ``(n_tokens_i, d)`` tensor per image.

Three layouts occur in vision-language models:

- ``sequence``: ``(B, L, d)`` over the prompt tokens, one row per image (language layers).
  Kept tokens per row: ``image`` where ``input_ids`` is the image token, ``text`` the other
  attended tokens, ``all`` every attended token (padding is never kept).
- ``per_image``: ``(n_images, P, d)``, one row of patches per image (CLIP/SigLIP encoder
  layers); every patch is an image token.
- ``flattened``: ``(Σ_i P_i, d)``, the patches of all images concatenated without a batch
  dimension (Qwen-VL vision blocks); image i has ``P_i = t·h·w`` from ``image_grid_thw``.
"""

from __future__ import annotations

from typing import Literal

import torch

from hsae.errors import BadInput

Layout = Literal["sequence", "per_image", "flattened"]


def split_sequence(
    hidden: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    image_token_id: int | None,
    tokens: str,
) -> list[torch.Tensor]:
    """Per prompt row of ``hidden`` (B, L, d), the rows of the kept tokens."""
    if hidden.ndim != 3 or hidden.shape[:2] != input_ids.shape:
        raise BadInput(
            f"the hooked output has shape {tuple(hidden.shape)}, but the prompt tokens are {tuple(input_ids.shape)}; "
            "this layer does not run over the prompt sequence"
        )
    attended = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    if tokens == "all":
        keep = attended
    else:
        if image_token_id is None:
            raise BadInput(f"tokens: {tokens!r} needs the model's image token id, which neither processor nor config gives")
        is_image = input_ids == image_token_id
        keep = is_image & attended if tokens == "image" else attended & ~is_image
    return [hidden[b][keep[b].to(hidden.device)] for b in range(hidden.shape[0])]


def split_per_image(hidden: torch.Tensor, n_images: int) -> list[torch.Tensor]:
    """The patches of each image of ``hidden`` (n_images, P, d)."""
    if hidden.ndim != 3 or hidden.shape[0] != n_images:
        raise BadInput(
            f"the hooked output has shape {tuple(hidden.shape)}; expected ({n_images}, patches, d), one row per image "
            "(multi-crop processing such as Gemma-3 pan-and-scan is not supported)"
        )
    return list(hidden.unbind(0))


def split_flattened(hidden: torch.Tensor, image_grid_thw: torch.Tensor) -> list[torch.Tensor]:
    """Cut ``hidden`` (Σ P_i, d) into images of ``P_i = prod(image_grid_thw[i])`` rows."""
    counts = image_grid_thw.prod(-1).tolist()
    if hidden.ndim != 2 or hidden.shape[0] != sum(counts):
        raise BadInput(
            f"the hooked output has shape {tuple(hidden.shape)}; expected ({sum(counts)}, d), "
            f"the patches of {len(counts)} images ({counts}) concatenated"
        )
    return list(hidden.split(counts, dim=0))


def infer_layout(hidden: torch.Tensor, inputs: dict, n_images: int) -> Layout:
    """Guess the layout from shapes: prompt-shaped → sequence, 2-D with a patch grid →
    flattened, (n_images, P, d) → per_image."""
    input_ids = inputs.get("input_ids")
    grid = inputs.get("image_grid_thw")
    if input_ids is not None and hidden.ndim == 3 and hidden.shape[:2] == input_ids.shape:
        return "sequence"
    if grid is not None and hidden.ndim == 2:
        return "flattened"
    if hidden.ndim == 3 and hidden.shape[0] == n_images:
        return "per_image"
    raise BadInput(
        f"cannot tell how the hooked output of shape {tuple(hidden.shape)} maps to {n_images} images; "
        "set the extractor's 'layout' option"
    )
