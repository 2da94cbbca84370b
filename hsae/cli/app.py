"""The ``hsae`` command line (Typer). Exit codes: 0 success, 2 bad input, 1 failure."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from hsae import registry
from hsae.errors import BadInput, HsaeError
from hsae.cli.tables import hierarchy_tree, plugins_table, summary_table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Hierarchical (cascaded) sparse autoencoders: train, evaluate and inspect.")
console = Console()

RecipeArg = typer.Argument(..., help="recipe YAML file", show_default=False)
SetOpt = typer.Option(None, "--set", help="override a recipe key, e.g. --set train.lr=3e-4 (repeatable)")


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[figures]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=False)


def _train_callback(bar: Progress):
    def start(total: int):
        task = bar.add_task("train", total=total, figures="")

        def on_step(step: int, metrics: dict | None) -> None:
            figures = None
            if metrics is not None:
                figures = "  ".join(
                    f"L{l}: fvu {m['fvu']:.3f} l0 {m['l0']:.1f} dead {m['dead']:.2f} |A| {m['n_inputs']}"
                    for l, m in metrics["levels"].items())
            bar.update(task, completed=step + 1, **({"figures": figures} if figures else {}))

        return on_step

    return start


def _store_callback(bar: Progress):
    task = None

    def on_progress(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task("activations", total=total, figures="")
        bar.update(task, completed=done, total=total)

    return on_progress


@app.command()
def run(recipe: Path = RecipeArg, out: Optional[Path] = typer.Option(None, help="run directory (default runs/<name>)"),
        set_: Optional[List[str]] = SetOpt, fresh: bool = typer.Option(False, help="discard an earlier run in --out")):
    """Run a recipe: activations, training (resumable), evaluation, summary."""
    from hsae.pipeline import Hooks, run_recipe
    from hsae.recipe.load import apply_override, check_recipe, parse_recipe, read_recipe_tree
    from hsae.run_dir import RunDir

    tree = read_recipe_tree(recipe)
    for assignment in set_ or []:
        apply_override(tree, assignment)
    parsed = parse_recipe(tree, str(recipe), recipe.parent)
    check_recipe(parsed)
    if parsed.data.activations is not None:  # the run dir's recipe.yaml must point at the same store
        tree.setdefault("data", {})["activations"] = str(Path(parsed.data.activations).resolve())
    run_dir = RunDir(out or Path("runs") / parsed.name)
    with _progress() as bar:
        hooks = Hooks(_store_callback(bar), _train_callback(bar), lambda text: console.print(f"[dim]{text}[/dim]"))
        metrics = run_recipe(parsed, tree, run_dir, hooks, fresh)
    console.print(summary_table(metrics, f"{parsed.name} — {run_dir.root}"))


@app.command()
def validate(recipe: Path = RecipeArg, set_: Optional[List[str]] = SetOpt):
    """Check a recipe (keys, types, plugins and their options, files) without running it."""
    from hsae.recipe.load import check_recipe, load_recipe

    parsed = load_recipe(recipe, set_)
    check_recipe(parsed)
    console.print(f"[green]ok[/green] {recipe}: {len(parsed.model.levels)} levels, "
                  f"encoders {', '.join(l.encoder['name'] for l in parsed.model.levels)}")


@app.command()
def plugins():
    """List every plugin of every group, with the distribution that provides it."""
    rows = registry.catalogue()
    for group in registry.GROUPS:
        console.print(plugins_table([r for r in rows if r.group == group], group))


@app.command("eval")
def eval_(run_dir: Path = typer.Argument(..., help="a finished run directory")):
    """Recompute metrics.json and hierarchy.json for a finished run."""
    from hsae.pipeline import evaluate_run
    from hsae.run_dir import RunDir

    metrics = evaluate_run(RunDir(run_dir))
    console.print(summary_table(metrics, str(run_dir)))


@app.command()
def inspect(run_dir: Path = typer.Argument(..., help="a finished run directory"),
            level: int = typer.Option(2, help="show the parents of this level"),
            max_parents: int = typer.Option(20, help="how many parents to show")):
    """The hierarchy as a tree: each parent, its HMS, its children."""
    from hsae.pipeline import load_metrics
    from hsae.run_dir import RunDir

    run = RunDir(run_dir)
    if not run.hierarchy.exists():
        raise BadInput(f"{run_dir}: no hierarchy.json; is this a finished run?")
    metrics = load_metrics(run)
    console.print(summary_table(metrics, str(run_dir)))
    try:
        console.print(hierarchy_tree(json.loads(run.hierarchy.read_text()), metrics, level, max_parents))
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def main() -> None:
    """Entry point: user errors become a one-paragraph message and exit code 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except BadInput as exc:
        console.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
        sys.exit(2)
    except HsaeError as exc:
        console.print(f"[bold red]failed:[/bold red] {exc}", highlight=False)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        console.print("interrupted; `hsae run` again resumes from the last checkpoint")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
