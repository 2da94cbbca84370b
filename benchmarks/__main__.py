"""``python -m benchmarks``: time the cases, measure their memory, print ratios, write Markdown.

The cases of one architecture family (hsae's TopK, its cascades and the peers' TopK; then
BatchTopK, …) are timed in one worker process, interleaved over rounds; a ratio is the median
over rounds of the two cases' ratio within a round. Memory is measured per case, each in a fresh
process (``benchmarks.worker``). HMS at scale (``benchmarks.hms``) and extraction against the
bare model forward (``benchmarks.extraction``) run in processes of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.cases import CASES
from benchmarks.report import markdown
from benchmarks.spec import Spec, add_options, from_options

EXTRACTION_FAMILIES = ("qwen3_vl", "gemma3", "llava")  # hsae_plugins.extractors.tiny_models
EXTRACTION_IMAGES = 128  # two commits of the store (every 64 images)


def run_worker(module: str, args: list[str], timeout: float) -> dict | str:
    """Run ``python -m module args… OUT`` and return its JSON, or the reason it failed."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}
        try:
            done = subprocess.run([sys.executable, "-m", module, *args, str(out)], capture_output=True, text=True,
                                  timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return f"timed out after {timeout:.0f} s"
        if done.returncode != 0 or not out.exists():
            return (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return json.loads(out.read_text())


def extraction_choice(values: list[str]) -> tuple[str, int] | None:
    """``--extraction`` as (family, images), or None for ``none``."""
    if values == ["none"]:
        return None
    family, *images = values
    if family not in EXTRACTION_FAMILIES or len(images) > 1 or (images and not images[0].isdigit()):
        raise SystemExit(f"--extraction takes FAMILY [IMAGES] with FAMILY one of {', '.join(EXTRACTION_FAMILIES)}, "
                         f"or none; got {' '.join(values)}")
    return family, int(images[0]) if images else EXTRACTION_IMAGES


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    add_options(parser)
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all cases (medians over rounds)")
    parser.add_argument("--cases", nargs="*", help="case names or groups (hsae, cascade, saelens, "
                        "dictionary_learning); default all")
    parser.add_argument("--hms", nargs=2, type=int, metavar=("IMAGES", "LATENTS"), default=(50_000, 16_384),
                        help="size of the HMS run (0 0: skip it)")
    parser.add_argument("--extraction", nargs="+", metavar="FAMILY [IMAGES]",
                        default=["qwen3_vl", str(EXTRACTION_IMAGES)],
                        help=f"tiny model family ({', '.join(EXTRACTION_FAMILIES)}) and image count of the "
                        "extraction benchmark; none: skip it")
    parser.add_argument("--out", type=Path, default=Path("benchmark-results.md"), help="Markdown report")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per worker")
    args = parser.parse_args(argv)
    args.extraction = extraction_choice(args.extraction)
    return args


def selected(names: list[str] | None) -> tuple[list[str], list[str]]:
    """The cases to run and notes on those skipped (a peer not installed)."""
    known = {c.name for c in CASES.values()} | {c.group for c in CASES.values()}
    unknown = set(names or ()) - known
    if unknown:
        raise SystemExit(f"unknown cases: {', '.join(sorted(unknown))}; known: {', '.join(CASES)}")
    chosen = [c for c in CASES.values() if not names or c.name in names or c.group in names]
    notes = sorted({f"{c.group} is not installed: its cases are skipped (docs/performance.md)"
                    for c in chosen if not c.available()})
    return [c.name for c in chosen if c.available()], notes


def time_cases(spec: Spec, names: list[str], rounds: int, timeout: float, notes: list[str]) -> dict[str, list[float]]:
    """samples/s of every round, per case; the cases of a family that failed are noted and left out."""
    speeds: dict[str, list[float]] = {}
    for family in dict.fromkeys(CASES[name].family for name in names):
        members = [name for name in names if CASES[name].family == family]
        result = run_worker("benchmarks.worker", ["time", json.dumps(spec.to_dict()), str(rounds), *members],
                            timeout * len(members))
        if isinstance(result, str):
            notes.append(f"{family} cases failed: {result}")
            print(notes[-1], flush=True)
            continue
        speeds.update(result)
        for name in members:
            print(f"{name:<34} {statistics.median(result[name]):>9,.0f} samples/s  rounds: "
                  + ", ".join(f"{v:,.0f}" for v in result[name]), flush=True)
    return speeds


def measure_cases(spec: Spec, speeds: dict[str, list[float]], timeout: float, notes: list[str]) -> dict[str, dict]:
    """The speeds with each case's memory, measured in a process of its own."""
    results = {}
    for name, rounds in speeds.items():
        usage = run_worker("benchmarks.worker", ["memory", json.dumps(spec.to_dict()), name], timeout)
        if isinstance(usage, str):
            notes.append(f"{name}: memory measurement failed: {usage}")
            usage = {"state_mib": None, "peak_tensor_mib": None, "resident_growth_mib": None}
        results[name] = {"samples_per_s": statistics.median(rounds), "rounds": rounds, **usage}
        print(f"{name:<34} peak tensors {usage['peak_tensor_mib'] or 0:,.1f} MiB", flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    spec = from_options(args)
    names, notes = selected(args.cases)
    for note in notes:
        print(note, flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results = measure_cases(spec, time_cases(spec, names, args.rounds, args.timeout, notes), args.timeout, notes)
    hms = extraction = None
    if args.hms[0] > 0:
        hms = run_worker("benchmarks.hms", [*map(str, args.hms), str(spec.threads)], args.timeout)
        print("HMS: " + (hms if isinstance(hms, str) else f"{hms['seconds']:.1f} s"), flush=True)
    if args.extraction is not None:
        family, images = args.extraction
        extraction = run_worker("benchmarks.extraction", [family, str(images), str(spec.threads), str(args.rounds)],
                                args.timeout)
        print("extraction: " + (extraction if isinstance(extraction, str)
                                else f"{extraction['ratio']:.2f}× the images/s of the bare forward"), flush=True)
    report = markdown(spec, args.rounds, results, hms, extraction, notes, load)
    print(report)
    args.out.write_text(report)
    if args.json:
        args.json.write_text(json.dumps({"spec": spec.to_dict(), "results": results, "hms": hms,
                                         "extraction": extraction, "notes": notes}, indent=2))


if __name__ == "__main__":
    main()
