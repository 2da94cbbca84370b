"""``openai_compatible``: the paper's judge question sent to any chat-completions endpoint.

For example a local vLLM server (``vllm serve Qwen/Qwen3-VL-8B-Instruct``, url
``http://127.0.0.1:8000/v1``) or a hosted API. One request per row: the image (unless
``send_images: false``) and the arms' captions under a per-row random labelling. A row whose
request fails or whose reply cannot be read gets an error verdict on every arm; the next row
is asked regardless.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from hsae.interfaces.judge import Judge, JudgeRow, Verdict
from hsae_plugins.chat_completions import ChatClient, ChatEndpointConfig, ChatError, image_part
from hsae_plugins.judges.question import labelled_arms, question, verdicts_from


class OpenAICompatibleJudgeConfig(ChatEndpointConfig):
    seed: int = Field(0, description="seed of the per-row labelling of the captions")


class OpenAICompatibleJudge(Judge):
    """Any chat-completions endpoint (vLLM, a hosted API) asked the paper's binary question per caption."""

    Config = OpenAICompatibleJudgeConfig
    needs_images = True

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.needs_images = self.config.send_images
        self.client = ChatClient(self.config, "openai_compatible judge")

    def judge(self, rows: Sequence[JudgeRow]) -> list[dict[str, Verdict]]:
        return [self._row(row) for row in rows]

    def _row(self, row: JudgeRow) -> dict[str, Verdict]:
        labels = labelled_arms(row, self.config.seed)
        content = [{"type": "text", "text": question(row, labels)}]
        if self.config.send_images and row.image is not None:
            content.insert(0, image_part(row.image))
        try:
            answer = self.client.complete([{"role": "user", "content": content}])
        except ChatError as exc:
            return {arm: Verdict.failed(str(exc)) for arm in row.captions}
        return verdicts_from(answer, labels)
