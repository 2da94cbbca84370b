"""The Markdown report: the table of every case and the ratios that matter."""

from __future__ import annotations

import platform
import statistics

import torch

from benchmarks.cases import CASES
from benchmarks.spec import Spec

FLAT = "hsae topk"
PEER_ARCHITECTURES = {"topk": "topk", "batchtopk": "batchtopk", "jumprelu": "jumprelu", "gated": "gated",
                      "relu": "standard"}


def paired_ratio(results: dict, a: str, b: str) -> float | None:
    """Median over rounds of (samples/s of a) / (samples/s of b), both timed in the same round."""
    if a not in results or b not in results:
        return None
    return statistics.median(x / y for x, y in zip(results[a]["rounds"], results[b]["rounds"]))


def _number(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def _mib(value: float | None) -> str:
    """MiB with a decimal below 10."""
    return _number(value, 1 if value is not None and abs(value) < 10 else 0)


def gradients(case: dict, spec: Spec) -> float:
    """The parameters' gradients as a multiple of the state (parameters, Adam's two moments, one
    batch)."""
    batch = spec.batch * spec.d * 4 / (1 << 20)
    return (case["state_mib"] - batch) / 3 / case["state_mib"]


def ratio_lines(results: dict, spec: Spec) -> list[str]:
    """hsae against each peer, fast against dense, cascades against the flat level 1, memory."""
    lines = []
    for ours, theirs in PEER_ARCHITECTURES.items():
        for peer in ("saelens", "dictionary_learning"):
            ratio = paired_ratio(results, f"hsae {ours}", f"{peer} {theirs}")
            if ratio is not None:
                lines.append(f"- hsae {ours}: **{ratio:.2f}×** the samples/s of {peer} {theirs}")
    for encoder in ("topk", "batchtopk"):
        ratio = paired_ratio(results, f"hsae {encoder}", f"hsae {encoder} dense")
        if ratio is not None:
            lines.append(f"- hsae {encoder}, fast path: **{ratio:.2f}×** the samples/s of the dense path")
    for name in results:
        ratio = paired_ratio(results, FLAT, name)
        if CASES[name].group == "cascade" and ratio is not None:
            lines.append(f"- {name}: a step takes **{ratio:.2f}×** the time of the flat level-1 step ({FLAT}; "
                         f"averaged over whole update_every cycles)")
    for name in (FLAT, f"{FLAT}, memory fast"):
        case = results.get(name, {})
        if case.get("peak_tensor_mib") is not None:
            step = f" ({case['memory_step']} step)" if case.get("memory_step") else ""
            lines.append(f"- {name}{step}: peak tensor memory of a step = "
                         f"**{case['peak_tensor_mib'] / case['state_mib']:.2f}×** parameters + Adam state + one batch "
                         f"({_mib(case['state_mib'])} MiB; whole weight gradients would be "
                         f"{gradients(case, spec):.2f}× of it)")
    ratio = paired_ratio(results, FLAT, f"{FLAT}, memory fast")
    if ratio is not None:
        lines.append(f"- {FLAT} (train.memory auto): **{ratio:.2f}×** the samples/s of train.memory fast")
    return lines


def hms_line(hms: dict) -> str:
    return (f"- HMS over {hms['images']:,} images × {hms['latents']:,} latents (embeddings of {hms['embedding']}), "
            f"streamed: **{hms['seconds']:.1f} s** (besides {hms['generation_seconds']:.1f} s generating the chunks); "
            f"resident size of the whole process {_mib(hms['resident_before_mib'])} MiB before, "
            f"{_mib(hms['resident_peak_mib'])} MiB at the peak")


def extraction_lines(extraction: dict) -> list[str]:
    """The stage against the bare forward, and where the stage's time per image goes."""
    e, rates = extraction, extraction["images_per_s"]
    ms = {key: 1000 / rate for key, rate in rates.items()}
    rest = ms["extraction"] - ms["reading_images"] - ms["activations"] - ms["store_write"]
    without_reading = ms["bare_forward"] / (ms["extraction"] - ms["reading_images"])
    return [
        f"- extraction (hsae.extract.run_extraction; tiny random {e['family']} model hooked at {e['layer']}, "
        f"{e['images']} images of {e['image_size']} px, batch {e['batch']}, {e['rows_per_image']:.0f} rows per image): "
        f"**{rates['extraction']:.1f} images/s** against {rates['bare_forward']:.1f} images/s for the bare forward "
        f"(processor + model(**inputs), no hook, whole model, images already decoded): **{e['ratio']:.2f}×** the "
        f"bare forward's images/s; leaving out the time the dataset takes to read the images, "
        f"**{without_reading:.2f}×**",
        f"  - per image: bare forward {ms['bare_forward']:.1f} ms; extraction {ms['extraction']:.1f} ms = reading the "
        f"JPEG files {ms['reading_images']:.1f} ms + the extractor's activations (processor, forward stopped after the "
        f"hooked layer, rows split per image) {ms['activations']:.1f} ms + writing the store {ms['store_write']:.1f} ms "
        f"{'+' if rest >= 0 else '−'} {abs(rest):.1f} ms not accounted for (the stage's bookkeeping, noise)",
        f"  - outside that rate: {e['before_first_report_s']:.1f} s to load the model and extract the first batch, "
        f"{e['after_last_report_s']:.2f} s to assemble the finished store",
    ]


def markdown(spec: Spec, rounds: int, results: dict, hms: dict | str | None, extraction: dict | str | None,
             notes: list[str], load: float | None) -> str:
    """The whole report; ``hms`` and ``extraction`` are a worker's result, the reason it failed,
    or None when skipped."""
    out = [
        "# hsae benchmark",
        "",
        f"d = {spec.d}, n = {spec.n}, k = {spec.k}, batch {spec.batch}, float32, {spec.threads} threads, Adam. "
        f"Per case {spec.warmup} warm-up steps, then {rounds} rounds of {spec.steps} timed steps (both rounded up "
        f"to whole cycles of m = {spec.update_every} steps where a cascade with update_every is timed); the cases "
        f"of one architecture are timed in one process, taking their steps in turn. samples/s: median over rounds; "
        f"ratios: median over rounds of the ratio within a round. torch {torch.__version__}, {platform.machine()}"
        + ("" if load is None else f", load average {load:.2f} at the start") + ".",
        "",
        "| case | what | samples/s | vs hsae topk | ms/step | peak tensors MiB | × state | resident growth MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        state, peak = r.get("state_mib"), r.get("peak_tensor_mib")
        versus = paired_ratio(results, name, FLAT) if CASES[name].family == "topk" else None
        out.append(f"| {name} | {CASES[name].what} | {_number(r['samples_per_s'])} | "
                   f"{_number(versus, 2, '×')} | {_number(1000 * spec.batch / r['samples_per_s'])} | "
                   f"{_mib(peak)} | {_number(None if peak is None else peak / state, 2)} | "
                   f"{_mib(r.get('resident_growth_mib'))} |")
    out += ["", "state: parameters + optimizer state + one batch. peak tensors: live tensor memory at the "
            "step's peak (torch profiler; a lower bound). resident growth: the process's resident high-water mark over the "
            "timed steps, above its resident size before the model was built (the libraries already imported), plus "
            "one batch. \"vs hsae topk\" "
            "is given for the cases timed with it (the TopK family).", ""]
    out += ratio_lines(results, spec)
    notes = list(notes)
    if isinstance(hms, dict):
        out.append(hms_line(hms))
    elif isinstance(hms, str):
        notes.append(f"HMS failed: {hms}")
    if isinstance(extraction, dict):
        out += extraction_lines(extraction)
    elif isinstance(extraction, str):
        notes.append(f"the extraction benchmark failed: {extraction}")
    out += [""] + [f"Note: {note}" for note in notes]
    return "\n".join(out).rstrip() + "\n"
