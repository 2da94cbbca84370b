"""``hf_vlm``: a local transformers vision-language model asked the paper's judge question.

Per row, the model sees the image and the arms' captions under a per-row random labelling
(A, B, C, …) and answers for each label whether the caption expresses the concept, as JSON
(greedy decoding). An answer that does not parse gives the row error verdicts that keep the
raw answer; the run goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from hsae.interfaces.judge import Judge, JudgeRow, Verdict
from hsae.interfaces.plugin import PluginConfig
from hsae_plugins.extractors.local_vlm import load_local_vlm
from hsae_plugins.judges.question import labelled_arms, question, verdicts_from


class HFVLMJudgeConfig(PluginConfig):
    model: Path = Field(description="folder of a local vision-language model (Qwen3-VL, Gemma-3, LLaVA, …)")
    device: str = Field("auto", description="'auto' or a torch device")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    max_new_tokens: int = Field(300, ge=1, description="length limit of the answer")
    batch_size: int = Field(4, ge=1, description="rows per generate call")
    seed: int = Field(0, description="seed of the per-row labelling of the captions")


class HFVLMJudge(Judge):
    """A local transformers vision-language model shown the image and the captions, asked the paper's binary question."""

    Config = HFVLMJudgeConfig
    needs_images = True

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.model = load_local_vlm(self.config.model, self.config.device, self.config.dtype, "hf_vlm judge")

    def judge(self, rows: Sequence[JudgeRow]) -> list[dict[str, Verdict]]:
        out = []
        size = self.config.batch_size
        for start in range(0, len(rows), size):
            batch = rows[start:start + size]
            labels = [labelled_arms(row, self.config.seed) for row in batch]
            answers = self.model.generate([row.image for row in batch],
                                          [question(row, l) for row, l in zip(batch, labels)], self.config.max_new_tokens)
            out += [verdicts_from(answer, l) for answer, l in zip(answers, labels)]
        return out
