"""Tiny, randomly initialised Qwen3-VL, Gemma-3 and LLaVA-1.5 models built offline.

Each model uses its family's real transformers classes (model, tokenizer, image processor,
processor) at toy sizes, so that extraction, hooks and steering can be exercised on a CPU
without downloading anything. The directory written by :func:`build` loads back with
``AutoModelForImageTextToText.from_pretrained`` and ``AutoProcessor.from_pretrained``
exactly like a real checkpoint (for Qwen3-VL, ``AutoProcessor`` first needs
``qwen3_vl_processor.register()``; the ``qwen3_vl`` extractor loads the processor class
directly). Weights are random: the activations have the right
shapes and flow, not meaning.

Command line: ``python -m hsae_plugins.extractors.tiny_models FAMILY OUT_DIR``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import string
from pathlib import Path

import torch

from hsae.errors import BadInput

FAMILIES = ("qwen3_vl", "gemma3", "llava")

# Minimal single-turn chat templates in each family's prompt format (real checkpoints bring
# their own). Message content is a string or a list of {"type": "image"|"text"} items.
_QWEN3_VL_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message.role }}\n"
    "{% if message.content is string %}{{ message.content }}{% else %}"
    "{% for item in message.content %}"
    "{% if item.type == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item.type == 'text' %}{{ item.text }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message.role == 'assistant' else message.role }}\n"
    "{% if message.content is string %}{{ message.content }}{% else %}"
    "{% for item in message.content %}"
    "{% if item.type == 'image' %}<start_of_image>"
    "{% elif item.type == 'text' %}{{ item.text }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{{ 'USER: ' if message.role == 'user' else 'ASSISTANT: ' }}"
    "{% if message.content is string %}{{ message.content }}{% else %}"
    "{% for item in message.content if item.type == 'image' %}<image>\n{% endfor %}"
    "{% for item in message.content if item.type == 'text' %}{{ item.text }}{% endfor %}"
    "{% endif %}"
    "{{ ' ' if message.role == 'user' else '</s>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

_TEXT_SIZES = dict(
    vocab_size=384,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    max_position_embeddings=2048,
)


def _byte_fallback_vocab(specials: list[str]) -> dict[str, int]:
    """Specials, the 256 byte tokens, the word marker and printable characters, in that order."""
    pieces = specials + [f"<0x{b:02X}>" for b in range(256)] + ["▁"]
    pieces += [c for c in string.ascii_letters + string.digits + string.punctuation if c not in pieces]
    return {piece: i for i, piece in enumerate(pieces)}


def _build_qwen3_vl(vision_layers: int, text_layers: int):
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer, Qwen2VLImageProcessorPil, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from hsae_plugins.extractors.qwen3_vl_processor import Qwen3VLImageOnlyProcessor

    vocab = {"<|endoftext|>": 0}
    # alphabet() comes from a set, in an order that changes from process to process
    vocab.update({c: i + 1 for i, c in enumerate(sorted(ByteLevel.alphabet()))})
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
        vision_start_token="<|vision_start|>",
        vision_end_token="<|vision_end|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>", "<|endoftext|>"],
    )
    config = Qwen3VLConfig(
        text_config=dict(
            _TEXT_SIZES,
            num_hidden_layers=text_layers,
            num_key_value_heads=2,
            head_dim=16,
            rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [4, 2, 2], "mrope_interleaved": True},
            tie_word_embeddings=False,
        ),
        vision_config=dict(
            depth=vision_layers,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            patch_size=16,
            temporal_patch_size=2,
            spatial_merge_size=2,
            out_hidden_size=64,
            num_position_embeddings=64,
            deepstack_visual_indexes=[0],
        ),
        image_token_id=tokenizer.image_token_id,
        video_token_id=tokenizer.video_token_id,
        vision_start_token_id=tokenizer.vision_start_token_id,
        vision_end_token_id=tokenizer.vision_end_token_id,
        tie_word_embeddings=False,
    )
    model = Qwen3VLForConditionalGeneration(config)
    image_processor = Qwen2VLImageProcessorPil(patch_size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = Qwen3VLImageOnlyProcessor(image_processor, tokenizer, chat_template=_QWEN3_VL_TEMPLATE)
    return model, processor


def _build_gemma3(vision_layers: int, text_layers: int):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor, GemmaTokenizer

    tokenizer = GemmaTokenizer(
        vocab=_byte_fallback_vocab(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]),
        merges=[],
        add_bos_token=True,
        boi_token="<start_of_image>",
        eoi_token="<end_of_image>",
        image_token="<image_soft_token>",
        extra_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    config = Gemma3Config(
        text_config=dict(
            _TEXT_SIZES,
            num_hidden_layers=text_layers,
            num_key_value_heads=2,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=64,
            layer_types=["sliding_attention", "full_attention"] * (text_layers // 2) + ["sliding_attention"] * (text_layers % 2),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            model_type="siglip_vision_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=vision_layers,
            num_attention_heads=2,
            image_size=224,
            patch_size=14,
            vision_use_head=False,
        ),
        mm_tokens_per_image=16,
        boi_token_index=tokenizer.boi_token_id,
        eoi_token_index=tokenizer.eoi_token_id,
        image_token_index=tokenizer.image_token_id,
    )
    model = Gemma3ForConditionalGeneration(config)
    # Random init zeroes this projection, which would cut the image off from the language model.
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.5)
    image_processor = Gemma3ImageProcessorPil(image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = Gemma3Processor(image_processor, tokenizer, chat_template=_GEMMA3_TEMPLATE, image_seq_length=16)
    return model, processor


def _build_llava(vision_layers: int, text_layers: int):
    from transformers import CLIPImageProcessorPil, LlamaTokenizer, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tokenizer = LlamaTokenizer(
        vocab=_byte_fallback_vocab(["<unk>", "<s>", "</s>"]),
        merges=[],
        add_bos_token=True,
        image_token="<image>",
        pad_token="<pad>",
    )
    config = LlavaConfig(
        vision_config=dict(
            model_type="clip_vision_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=vision_layers,
            num_attention_heads=2,
            image_size=224,
            patch_size=16,
            projection_dim=32,
        ),
        text_config=dict(
            _TEXT_SIZES,
            model_type="llama",
            num_hidden_layers=text_layers,
            num_key_value_heads=4,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        image_token_index=tokenizer.image_token_id,
        image_seq_length=196,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    model = LlavaForConditionalGeneration(config)
    processor = LlavaProcessor(
        CLIPImageProcessorPil(),
        tokenizer,
        patch_size=16,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=_LLAVA_TEMPLATE,
    )
    return model, processor


_BUILDERS = {"qwen3_vl": _build_qwen3_vl, "gemma3": _build_gemma3, "llava": _build_llava}


def build_in_memory(family: str, *, vision_layers: int = 2, text_layers: int = 2, seed: int = 0):
    """Return ``(model, processor)`` of a tiny random ``family`` model (eval mode, float32)."""
    if family not in _BUILDERS:
        raise BadInput(f"unknown tiny model family {family!r}; expected one of: {', '.join(FAMILIES)}")
    if vision_layers < 1 or text_layers < 1:
        raise BadInput(f"tiny {family} model: vision_layers and text_layers must be >= 1")
    torch.manual_seed(seed)
    model, processor = _BUILDERS[family](vision_layers, text_layers)
    return model.eval(), processor


def build(family: str, out_dir: str | Path, *, vision_layers: int = 2, text_layers: int = 2, seed: int = 0) -> Path:
    """Build a tiny ``family`` model and save model + processor to ``out_dir``; return it.

    The directory is a normal checkpoint: ``from_pretrained(out_dir)`` loads it offline. It is
    written under a temporary name and renamed when whole, so a kill never leaves half a model.
    """
    model, processor = build_in_memory(family, vision_layers=vision_layers, text_layers=text_layers, seed=seed)
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hsae_plugins.extractors.tiny_models", description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=FAMILIES)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--vision-layers", type=int, default=2)
    parser.add_argument("--text-layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = build(args.family, args.out_dir, vision_layers=args.vision_layers, text_layers=args.text_layers, seed=args.seed)
    print(f"tiny {args.family} model written to {out}")


if __name__ == "__main__":
    main()
