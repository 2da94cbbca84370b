"""Rich rendering of ``hsae compare``'s tables (hsae.run.compare)."""

from __future__ import annotations

from rich import box
from rich.table import Table

from hsae.run.compare import Comparison, cell

PADDING = 3  # characters rich adds to each column: cell padding and the space between columns


def comparison_tables(table: Comparison, width: int) -> list[Table]:
    """Metrics down, runs across, as in the paper's Tables 1 and 4; when the runs do not fit in
    ``width`` characters, the columns continue in further tables under the same title."""
    cells = [[cell(v, row.digits) for v in row.values] for row in table.rows]
    first = max([len("metric"), *(len(row.name) for row in table.rows)]) + PADDING
    widths = [max(len(name), *(len(c[i]) for c in cells)) + PADDING for i, name in enumerate(table.columns)]
    parts, current, used = [], [], first
    for i, w in enumerate(widths):
        if current and used + w > width:
            parts.append(current)
            current, used = [], first
        current.append(i)
        used += w
    parts.append(current)
    out = []
    for part_no, columns in enumerate(parts):
        title = table.title if part_no == 0 else f"{table.title} (continued)"
        rich_table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        rich_table.add_column("metric", no_wrap=True)
        for i in columns:
            rich_table.add_column(table.columns[i], justify="right", no_wrap=True)
        for row, row_cells in zip(table.rows, cells):
            rich_table.add_row(row.name, *(row_cells[i] for i in columns))
        out.append(rich_table)
    return out
