"""HMS at scale in its own process: ``python -m benchmarks.hms IMAGES LATENTS THREADS OUT_JSON``.

Codes of IMAGES images over LATENTS level-1 units (``ACTIVE`` non-zeros per image drawn at
random, as a TopK code pooled per image, rarely fewer where two draws coincide) and
``EMBEDDING``-wide image embeddings are generated chunk by chunk, the same on both of HMS's
passes, and never held whole; a three-level hierarchy (LATENTS → /4 → /16, random parents) is
scored with ``hsae.metrics.hms``. Reports HMS's wall time without the time spent generating the
chunks, that generation time, and the process's resident size before HMS and at its peak
(everything included: interpreter, torch, one generated chunk, HMS).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from benchmarks import memory

EMBEDDING = 768
CHUNK = 1024
ACTIVE = 64


class ChunkSource:
    """A ``chunks()`` callable for ``semantic_vectors``: fresh, identical iterators over
    ``(acts (b, latents), emb (b, EMBEDDING))`` chunks. ``seconds`` adds up the time spent
    generating them."""

    def __init__(self, images: int, latents: int, seed: int = 0):
        self.images, self.latents, self.seed = images, latents, seed
        self.seconds = 0.0

    def __call__(self):
        for number, start in enumerate(range(0, self.images, CHUNK)):
            started = time.perf_counter()
            rows = min(CHUNK, self.images - start)
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + number)
            index = torch.randint(self.latents, (rows, ACTIVE), generator=generator)
            acts = torch.zeros(rows, self.latents).scatter_(1, index, torch.rand(rows, ACTIVE, generator=generator))
            chunk = acts, torch.randn(rows, EMBEDDING, generator=generator)
            self.seconds += time.perf_counter() - started
            yield chunk


def run_hms(images: int, latents: int, threads: int) -> dict:
    from hsae.metrics.hms import hms_by_level, semantic_vectors

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(1)
    parents = [torch.randint(latents // 4, (latents,), generator=generator),
               torch.randint(latents // 16, (latents // 4,), generator=generator)]
    source = ChunkSource(images, latents)
    resident_before = memory.resident_mib()
    memory.reset_resident_peak()
    started = time.perf_counter()
    vectors = semantic_vectors(source)
    reports = hms_by_level(vectors, parents, top_level_size=latents // 16)
    seconds = time.perf_counter() - started
    return {
        "images": images, "latents": latents, "embedding": EMBEDDING, "threads": threads,
        "seconds": seconds - source.seconds, "generation_seconds": source.seconds,
        "resident_before_mib": resident_before, "resident_peak_mib": memory.resident_peak_mib(),
        "hms": [report.mean for report in reports],
    }


def main(argv: list[str] | None = None) -> None:
    images, latents, threads, out = argv or sys.argv[1:]
    Path(out).write_text(json.dumps(run_hms(int(images), int(latents), int(threads))))


if __name__ == "__main__":
    main()
