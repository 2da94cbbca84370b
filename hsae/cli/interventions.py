"""The commands that use a finished run inside its model: ``steer``, ``judge``, ``label`` and
``eval --spliced`` (registered on the app in ``hsae.cli.app``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
import yaml
from pydantic import ValidationError

from hsae.errors import BadInput

RunArg = typer.Argument(..., help="a finished run directory", show_default=False)


def plugin_spec(text: str, option: str) -> dict[str, Any]:
    """A plugin given on the command line: a bare name, or a YAML mapping with a 'name'."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"{option} {text!r}: not a name or a YAML mapping ({exc})") from None
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return value
    raise BadInput(f"{option} {text!r}: give a plugin name, or a mapping such as '{{name: openai_compatible, url: ...}}'")


def _validated(model, data: dict, where: str):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{where}.{'.'.join(str(p) for p in err['loc'])}: "
                             + ("unknown key" if err["type"] == "extra_forbidden" else err["msg"])
                             for err in exc.errors())
        raise BadInput(problems) from None


def steer_config(run_dir: Path, overrides: list[str]):
    """The run's ``steer:`` section (or the defaults) with ``--set steer.KEY=VALUE`` applied."""
    from hsae.recipe.load import apply_override
    from hsae.run.run_dir import RunDir
    from hsae.steer.config import SteerConfig

    tree = {"steer": (RunDir(run_dir).read_recipe_tree() or {}).get("steer") or {}}
    for assignment in overrides:
        if not assignment.startswith("steer."):
            raise BadInput(f"--set {assignment!r}: hsae steer takes keys of the steer section, e.g. steer.alpha=2")
        apply_override(tree, assignment)
    return _validated(SteerConfig, tree["steer"], "steer")


def steer(run_dir: Path = RunArg,
          set_: Optional[List[str]] = typer.Option(None, "--set", help="override a steer key, e.g. --set steer.clusters=3")):
    """Steer the model with the run's clusters (spec §8): captions per cluster × image × arm, judged;
    writes steering.jsonl and steering.json and prints the Table-3-shaped summary."""
    run_steer(run_dir, steer_config(run_dir, set_ or []))


def run_steer(run_dir: Path, config) -> None:
    """Run steering with bars, print the summary table and where the files are."""
    from hsae.cli.bars import bar_callback, console
    from hsae.cli.intervention_tables import steering_table
    from hsae.steer.run import RECORDS_FILE, run_steering

    summary = run_steering(run_dir, config, bar_callback("captions"), bar_callback("judge"))
    judge = config.judge["name"]
    console.print(steering_table(summary["judges"][judge], f"steering — {run_dir} — judge {judge}"))
    console.print(f"[dim]written: {run_dir / RECORDS_FILE}, {run_dir / 'steering.json'}[/dim]")


def judge(run_dir: Path = RunArg,
          judge_: str = typer.Option(..., "--judge", help="a judge name, or a YAML mapping {name: ..., <options>}")):
    """Judge a steering run again from its stored captions (nothing is generated)."""
    from hsae.cli.bars import bar_callback, console
    from hsae.cli.intervention_tables import steering_table
    from hsae.steer.rejudge import rejudge_run

    spec = plugin_spec(judge_, "--judge")
    summary = rejudge_run(run_dir, spec, bar_callback("judge"))
    console.print(steering_table(summary, f"steering — {run_dir} — judge {spec['name']}"))


def label(run_dir: Path = RunArg,
          labeller: str = typer.Option("class_names", help="a labeller name, or a YAML mapping {name: ..., <options>}"),
          level: Optional[List[int]] = typer.Option(None, help="label the units of this level (repeatable; default: all)"),
          top_images: int = typer.Option(10, help="top images per unit shown to the labeller"),
          max_units: Optional[int] = typer.Option(None, help="label at most this many units")):
    """Name every atom and cluster from its top training images; writes labels.json."""
    from hsae.cli.bars import bar_callback, console
    from hsae.concepts.labels import label_run, labels_path

    fresh = label_run(run_dir, plugin_spec(labeller, "--labeller"), level or None, top_images, max_units,
                      bar_callback("label"))
    failed = sum(1 for entry in fresh.values() if entry["error"])
    console.print(f"labelled {len(fresh) - failed} units" + (f", {failed} failed (their errors are in the file)" if failed else "")
                  + f": {labels_path(run_dir)}")


def spliced_eval(run_dir: Path, images: int, continuation: int, write_back: str, code: str,
                 options: dict[str, Any]) -> None:
    """``hsae eval RUN --spliced``: the spliced evaluation, printed and written to spliced.json."""
    from hsae.cli.bars import bar_callback, console
    from hsae.cli.intervention_tables import spliced_table
    from hsae.intervene.run_model import RunModel
    from hsae.intervene.spliced import SplicedConfig, spliced_evaluation
    from hsae.run.run_dir import write_json

    config = _validated(SplicedConfig, {"n_images": images, "continuation": continuation, "write_back": write_back,
                                        "code": code, **options}, "spliced")
    result = spliced_evaluation(RunModel.open(run_dir), config, bar_callback("spliced"))
    write_json(Path(run_dir) / "spliced.json", result)
    console.print(spliced_table(result, f"spliced evaluation — {run_dir}"))


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs (values parsed as YAML) as a mapping."""
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise BadInput(f"--option {pair!r}: expected KEY=VALUE, e.g. images='{{name: coco, split: test}}'")
        key, raw = pair.split("=", 1)
        options[key.strip()] = yaml.safe_load(raw)
    return options
