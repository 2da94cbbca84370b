"""The ``hsae`` command line (Typer). Exit codes: 0 success, 2 bad input, 1 failure."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import click
import typer
from rich.markup import escape

from hsae import registry
from hsae.cli import guard, interventions
from hsae.cli.bars import bar_callback, console, progress_bar
from hsae.cli.tables import hierarchy_tree, plugins_table, summary_table
from hsae.errors import BadInput

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Hierarchical (cascaded) sparse autoencoders: train, evaluate and inspect.")

RecipeArg = typer.Argument(..., help="recipe YAML file", show_default=False)
SetOpt = typer.Option(None, "--set", help="override a recipe key, e.g. --set train.lr=3e-4 (repeatable)")


def _train_callback(total: int):
    """A live bar for training with the latest per-level figures, opened at the first step this
    process runs (a resumed run starts part-way) and closed after the last one."""
    bar, task = None, None

    def on_step(step: int, metrics: dict | None) -> None:
        nonlocal bar, task
        if bar is None:
            bar = progress_bar()
            task = bar.add_task("train", total=total, completed=step, figures="")
            bar.start()
        if metrics is not None:
            figures = " ".join(f"L{l} fvu {m['fvu']:.2f} l0 {m['l0']:.1f} dead {m['dead']:.2f} |A| {m['n_inputs']}"
                               for l, m in metrics["levels"].items())
            bar.update(task, figures=figures)
        bar.update(task, completed=step + 1)
        if step + 1 >= total:
            bar.stop()

    return on_step


def _store_callback():
    """A live bar for writing the activation store; closed when the last row is written."""
    return bar_callback("activations")


@app.command()
def run(recipe: Path = RecipeArg, out: Optional[Path] = typer.Option(None, help="run directory (default runs/<name>)"),
        set_: Optional[List[str]] = SetOpt, fresh: bool = typer.Option(False, help="discard an earlier run in --out"),
        force: bool = typer.Option(False, help="resume a run in --out with a recipe that differs from its own"),
        nproc: int = typer.Option(1, "--nproc", min=1, help="data-parallel processes on this machine, started "
                                  "through torchrun (docs/distributed.md)")):
    """Run a recipe: activations, training (resumable), evaluation, summary. A recipe with
    variants runs each into <out>/<variant>/ on shared activations, then compares them."""
    from hsae.run.pipeline import Hooks, run_recipe
    from hsae.recipe.load import apply_override, parse_recipe, read_recipe_tree
    from hsae import distributed
    from hsae.run.run_dir import RunDir

    if nproc > 1 and not distributed.launched():
        sys.exit(_torchrun(nproc))
    tree = read_recipe_tree(recipe)
    if tree.get("variants"):
        if distributed.launched():
            raise BadInput(f"{recipe}: a recipe with variants runs on one process; run each variant's recipe "
                           "data-parallel instead (docs/distributed.md)")
        _run_sweep(recipe, tree, set_ or [], out, fresh, force)
        return
    for assignment in set_ or []:
        apply_override(tree, assignment)
    parsed = parse_recipe(tree, str(recipe), recipe.parent)
    _check(recipe, parsed)
    _resolve_store_path(tree, parsed)
    parsed.train.device = distributed.join(parsed.train.device)
    run_dir = RunDir(out or Path("runs") / parsed.name)
    if distributed.is_main():
        hooks = Hooks(_store_callback(), _train_callback, lambda text: console.print(f"[dim]{text}[/dim]"))
    else:  # the first process reports for all
        hooks = Hooks()
    try:
        metrics = run_recipe(parsed, tree, run_dir, hooks, fresh, force)
    finally:
        distributed.leave()
    if metrics is None:
        return
    console.print(summary_table(metrics, f"{parsed.name} — {run_dir.root}"))
    if parsed.steer is not None:
        interventions.run_steer(run_dir.root, parsed.steer)
    _write_views(run_dir.root)


def _write_views(root: Path) -> None:
    """Plots and the browser site of a finished run, and where they are."""
    from hsae.browse.site import browse_run
    from hsae.plots import write_run_plots

    plots = write_run_plots(root)
    with console.status("writing the hierarchy browser"):
        index = browse_run(root, root / "browse")
    console.print(f"plots:   {', '.join(str(p.resolve()) for p in plots)}")
    console.print(f"browser: {index.resolve()}")


def _check(path: Path, recipe, variant: str | None = None) -> None:
    """check_recipe, its message naming the recipe file (and the variant)."""
    from hsae.recipe.load import check_recipe

    try:
        check_recipe(recipe)
    except BadInput as exc:
        raise BadInput(f"{path}{f' (variant {variant})' if variant else ''}: {exc}") from None


def _torchrun(nproc: int) -> int:
    """``hsae run --nproc N …``: the same command line started as N local processes by torchrun
    (a free port on this machine); its exit code."""
    import subprocess

    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "hsae", *args]
    return subprocess.call(command)


def _resolve_store_path(tree: dict, parsed) -> None:
    """The run dir's recipe.yaml must point at the same store from anywhere."""
    if parsed.data.activations is not None:
        tree.setdefault("data", {})["activations"] = str(Path(parsed.data.activations).resolve())


def _run_sweep(recipe: Path, tree: dict, overrides: list[str], out: Optional[Path], fresh: bool, force: bool) -> None:
    """Every variant into <out>/<variant>/, then the comparison table (printed and written)."""
    from hsae.run.compare import collect_runs, comparisons
    from hsae.run.pipeline import Hooks
    from hsae.run.variants import expand_variants
    from hsae.run.sweep import run_sweep

    variants = expand_variants(tree, overrides, str(recipe), recipe.parent)
    for variant in variants:
        _check(recipe, variant.recipe, variant.name)
        _resolve_store_path(variant.tree, variant.recipe)
    out = out or (Path("runs") / variants[0].recipe.name).parent
    run_sweep(variants, out, Hooks(_stores_callback(), _train_callback, lambda text: console.print(f"[bold]{text}[/bold]")),
              fresh, force)
    _show_comparison(comparisons(collect_runs([out])), out)


def _stores_callback():
    """A store bar per store written (a sweep writes one per activation source)."""
    current, finished = None, True

    def on_progress(done: int, total: int) -> None:
        nonlocal current, finished
        if finished:
            current = _store_callback()
        current(done, total)
        finished = done >= total

    return on_progress


def _show_comparison(tables, folder: Path) -> None:
    from hsae.cli.comparison_tables import comparison_tables
    from hsae.run.compare import write_comparison

    for table in tables:
        for part in comparison_tables(table, console.width):
            console.print(part)
    written = write_comparison(tables, folder)
    console.print(f"[dim]written: {', '.join(map(str, written))}[/dim]")


@app.command()
def compare(run_dirs: List[Path] = typer.Argument(..., help="finished run directories, or a sweep's --out folder"),
            out: Optional[Path] = typer.Option(None, help="folder for compare.md, compare.csv and the bar chart "
                                               "compare.png (default: the sweep folder when one is given, else the "
                                               "folder that holds the runs)")):
    """The runs side by side as in the paper's tables: HMS min/median/max/mean, null, |P|, FVU, L0, recovery."""
    from hsae.run.compare import collect_runs, comparisons, default_folder

    tables = comparisons(collect_runs(run_dirs))
    _show_comparison(tables, out or default_folder(run_dirs))


@app.command()
def export(run_dir: Path = typer.Argument(..., help="a finished run directory"),
           out: Path = typer.Argument(..., help="folder to write (one sub-folder per level)"),
           format: str = typer.Option("saelens", "--format", help="saelens: SAELens v6 (SAE.load_from_disk)")):
    """Write a run's levels in another library's format, with hierarchy.json and labels.json beside them."""
    from hsae.interop.export import export_run

    if format != "saelens":
        raise BadInput(f"--format {format!r}: the formats are: saelens")
    for folder in export_run(run_dir, out):
        console.print(f"written: {folder}")


@app.command()
def browse(run_dir: Path = typer.Argument(..., help="a finished run directory"),
           out: Optional[Path] = typer.Option(None, help="site folder (default RUN/browse)"),
           max_rows: Optional[int] = typer.Option(None, help="measure units on at most this many store rows")):
    """Write the hierarchy browser: a static site (open OUT/index.html from disk) and the run's plots."""
    from hsae.browse.site import browse_run
    from hsae.plots import write_run_plots

    plots = write_run_plots(run_dir)
    with console.status("writing the hierarchy browser"):
        index = browse_run(run_dir, out or run_dir / "browse", max_rows,
                           progress=lambda text: console.print(f"[dim]{text}[/dim]"))
    console.print(f"plots:   {', '.join(str(p.resolve()) for p in plots)}")
    console.print(f"browser: {index.resolve()}")


@app.command()
def validate(recipe: Path = RecipeArg, set_: Optional[List[str]] = SetOpt):
    """Check a recipe (keys, types, plugins and their options, files) without running it."""
    from hsae.methods import method_spec
    from hsae.recipe.load import devices, load_recipe, read_recipe_tree
    from hsae.run.variants import expand_variants

    tree = read_recipe_tree(recipe)
    if tree.get("variants"):
        variants = expand_variants(tree, set_ or [], str(recipe), recipe.parent)
        for variant in variants:
            _check(recipe, variant.recipe, variant.name)
        console.print(f"[green]ok[/green] {recipe}: {len(variants)} variants: " + ", ".join(
            f"{v.name} ({method_spec(v.recipe.model.method)[0]})" for v in variants))
        for where in dict.fromkeys(devices(v.recipe) for v in variants):
            console.print(f"device: {where}")
        return
    parsed = load_recipe(recipe, set_)
    _check(recipe, parsed)
    console.print(f"[green]ok[/green] {recipe}: method {method_spec(parsed.model.method)[0]}, "
                  f"{len(parsed.model.levels)} levels, "
                  f"encoders {', '.join(l.encoder['name'] for l in parsed.model.levels)}")
    console.print(f"device: {devices(parsed)}")


@app.command()
def plugins():
    """List every plugin of every group, with the distribution that provides it."""
    rows = registry.catalogue()
    for group in registry.GROUPS:
        console.print(plugins_table([r for r in rows if r.group == group], group))


@app.command("eval")
def eval_(run_dir: Path = typer.Argument(..., help="a finished run directory"),
          spliced: bool = typer.Option(False, "--spliced", help="instead: write the level-1 SAE back into the model and "
                                       "measure the next-token loss (CE, loss recovered, KL) on held-out images"),
          images: int = typer.Option(32, help="--spliced: held-out images"),
          continuation: int = typer.Option(16, help="--spliced: greedy tokens of the clean model appended and scored"),
          write_back: str = typer.Option("reconstruction", help="--spliced: reconstruction or error_preserving"),
          code: str = typer.Option("encoder", help="--spliced: the SAE's encoder, or relu (the dense ReLU code)"),
          option: Optional[List[str]] = typer.Option(None, help="--spliced: KEY=VALUE, e.g. images='{name: coco, "
                                                     "split: test, ...}' or extractor='{device: cuda}'")):
    """Recompute metrics.json and hierarchy.json for a finished run (or, with --spliced, the spliced evaluation)."""
    from hsae.run import lock as run_lock
    from hsae.run.pipeline import evaluate_run
    from hsae.run.run_dir import RunDir

    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: no such run directory")
    with run_lock.holding(run_dir, "run directory"):
        if spliced:
            from hsae.cli.interventions import parse_options, spliced_eval

            spliced_eval(run_dir, images, continuation, write_back, code, parse_options(option or []))
            return
        metrics = evaluate_run(RunDir(run_dir))
    console.print(summary_table(metrics, str(run_dir)))


@app.command()
def inspect(run_dir: Path = typer.Argument(..., help="a finished run directory"),
            level: int = typer.Option(2, help="show the parents of this level"),
            max_parents: int = typer.Option(20, help="how many parents to show")):
    """The hierarchy as a tree: each parent, its HMS, its children, and their labels (hsae label)."""
    from hsae.concepts.labels import read_labels
    from hsae.run.pipeline import load_metrics
    from hsae.run.run_dir import RunDir, reading

    run = RunDir(run_dir)
    if not run.hierarchy.exists():
        raise BadInput(f"{run_dir}: no hierarchy.json; is this a finished run?")
    metrics = load_metrics(run)
    labels = read_labels(run_dir)
    with reading(run.root):  # a damaged metrics.json or hierarchy.json
        table = summary_table(metrics, str(run_dir))
        try:
            tree = hierarchy_tree(json.loads(run.hierarchy.read_text()), metrics, level, max_parents, labels)
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError):
                raise
            raise BadInput(str(exc)) from None
    console.print(table)
    console.print(tree)


for _command in (interventions.steer, interventions.judge, interventions.label):
    app.command()(_command)


# A wrong command line. Recent typer releases raise the exceptions of their own copy of click,
# which derive from typer.TyperException, not click.ClickException.
USAGE_ERRORS = (click.ClickException, getattr(typer, "TyperException", click.ClickException))


def _interrupted() -> None:
    console.print("interrupted; `hsae run` again resumes from the last checkpoint")
    sys.exit(130)


def main() -> None:
    """Entry point: every way a command can end becomes one message and an exit code
    (``hsae.cli.guard``): 2 for bad input, 1 for a failure, 128 + n for signal n; never a traceback."""
    guard.raise_on_sigterm()
    try:
        code = app(standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except USAGE_ERRORS as exc:
        exc.show()
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - the one place every error is reported
        status, message = guard.classify(exc)
        head, _, rest = message.partition(": ") if status in (1, 2) else ("", "", message)
        console.print(f"[bold red]{escape(head)}:[/bold red] {escape(rest)}" if head else escape(rest), highlight=False)
        sys.exit(status)
    # Without standalone mode, typer returns the code of an Exit instead of exiting; it turns
    # Ctrl-C into Exit(130).
    if code == 130:
        _interrupted()
    if isinstance(code, int) and code:
        sys.exit(code)
