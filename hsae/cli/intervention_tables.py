"""Rich renderings of steering (the paper's Table 3 shape) and spliced evaluation."""

from __future__ import annotations

from rich import box
from rich.table import Table

ARM_ORDER = ("baseline", "rand1", "matched", "best_child", "cluster")


def _cell(cell: dict | None) -> str:
    if not cell or cell["rate"] is None:
        return "–" if not cell or not cell["errors"] else f"– ({cell['errors']} errors)"
    text = f"{100 * cell['rate']:.1f} [{100 * cell['low']:.1f}–{100 * cell['high']:.1f}] n={cell['n']}"
    return text + (f" ({cell['errors']} errors)" if cell["errors"] else "")


def steering_table(summary: dict, title: str) -> Table:
    """Rows: appeared (insertion) and removed (suppression) %; columns: the arms, each cell the
    rate with its 95 % Wilson interval and the number of rows judged."""
    arms = [a for a in ARM_ORDER if any(a in summary.get(e, {}) for e in ("insertion", "suppression"))]
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, caption_justify="left",
                  caption="% of rows [95 % Wilson interval] and rows judged; removed: among rows whose baseline "
                          "caption expresses the concept; rows the judge could not answer are errors, not in n. "
                          "The paper's columns: NS = baseline, Rand. = rand1, MSAE = matched, Single = best_child")
    table.add_column("metric", no_wrap=True)
    for arm in arms:
        table.add_column(arm, justify="right")
    for experiment, name in (("insertion", "Appeared (%)"), ("suppression", "Removed (%)")):
        if summary.get(experiment):
            table.add_row(name, *(_cell(summary[experiment].get(arm)) for arm in arms))
    return table


def spliced_table(result: dict, title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, caption_justify="left",
                  caption=f"{result['images']} held-out images, {result['positions']} scored positions; "
                          f"write-back {result['write_back']}, code {result['code']}; "
                          "CE: next-token cross-entropy (nats) clean, with the SAE spliced in, with the layer zeroed; "
                          "recovered = (CE zero − CE SAE) / (CE zero − CE clean); KL: mean KL(clean ‖ ·) per position")
    for name in ("CE clean", "CE SAE", "CE zero", "recovered", "KL SAE", "KL zero"):
        table.add_column(name, justify="right")
    recovered = result["loss_recovered"]
    table.add_row(f"{result['ce_clean']:.4f}", f"{result['ce_sae']:.4f}", f"{result['ce_zero']:.4f}",
                  "–" if recovered is None else f"{recovered:.4f}", f"{result['kl_sae']:.3g}", f"{result['kl_zero']:.3g}")
    return table
