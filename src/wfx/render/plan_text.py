"""The plan for a terminal: rich tables, colour only where the terminal wants it.

The words come from :mod:`wfx.render.plan_document`; this module only turns its blocks
into rich renderables (:mod:`wfx.render.plan_plain` lays out the same blocks off a
terminal without rich)."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from wfx.plan import Plan
from wfx.render.plan_document import (
    Block,
    Cell,
    Grid,
    Listing,
    Paragraph,
    plan_document,
)


def render_text(plan: Plan, *, verbose: bool = False) -> RenderableType:
    """The whole plan as one rich renderable: what each step runs always, and with
    `verbose` its environment, shell, directory, expressions and where settings come from.
    Text from the workflow is never read as markup, and characters that would not show
    (or would move the cursor) are written as `<U+XXXX>`."""
    return render_blocks(plan_document(plan, verbose=verbose))


def render_blocks(blocks: tuple[Block, ...]) -> RenderableType:
    """The blocks of a plan document as rich renderables, top to bottom."""
    return Group(*(_renderable(block) for block in blocks))


def _renderable(block: Block) -> RenderableType:
    if isinstance(block, Paragraph):
        return _text(block)
    if isinstance(block, Grid):
        return _table(block)
    return _listing(block)


def _text(paragraph: Paragraph) -> Text:
    text = Text(style=paragraph.style)
    for span in paragraph.spans:
        text.append(span.text, style=span.style or None)
    if paragraph.rstrip:
        text.rstrip()
    return text


def _table(grid: Grid) -> Table:
    table = Table(title=grid.title, title_justify="left", expand=False, show_lines=False)
    for column in grid.columns:
        table.add_column(column, no_wrap=column in grid.no_wrap)
    for row in grid.rows:
        table.add_row(*(_cell(cell) for cell in row))
    return table


def _cell(cell: Cell) -> RenderableType:
    # wfx's own words go in as rich has always been given them (a str: markup)
    return cell.text if cell.words else Text(cell.text, style=cell.style)


def _listing(listing: Listing) -> Table:
    """The lines behind a `│` rule drawn on every printed line (wrapped ones too), so no
    text of them can pass for a line of the plan."""
    table = Table(
        box=box.MINIMAL, show_header=False, show_edge=False, pad_edge=False, padding=(0, 1)
    )
    table.add_column(width=listing.indent - 2)
    table.add_column(overflow="fold")
    for line in listing.lines:
        table.add_row("", Text(line))
    return table
