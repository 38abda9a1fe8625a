"""The text plan off a terminal, laid out without rich: the same characters rich prints.

Importing rich and laying the plan out with it is about a fifth of a `wfx plan`; a plan
read through a pipe (a review, a CI log) has no colour, so nothing rich does there
needs rich. This back end lays out a :mod:`wfx.render.plan_document` as rich lays it
out at a given width with no colour, and only where it can be sure of every character:
each one a single cell wide (printable ASCII and the few symbols the plan itself draws),
a table too wide narrowed only as far as rich's first step goes, a word longer than its
line folded (rich crops one longer than a table cell: not done here). Anything else
returns None, and the caller prints with rich: a plan is never shown differently for
the sake of speed. tests/render/test_plan_text_plain.py compares both back ends byte for
byte.
"""

from __future__ import annotations

import re

from wfx.render.plan_document import Block, Cell, Grid, Listing, Paragraph

#: characters known to be one cell wide to rich (tested against rich's own cell_len);
#: ASCII controls, tabs, wide and combining characters are not among them
_ONE_CELL = frozenset(
    [chr(code) for code in range(0x20, 0x7F)] + ["→", "└", "├", "│", "×", "≤", "–"]
)
#: rich's words when it wraps a line: a word with the whitespace around it
_WORD = re.compile(r"\s*\S+\s*")
#: the heavy-headed box rich draws a table in by default: top, header, rule, row, bottom
_TOP, _HEAD, _RULE, _ROW, _BOTTOM = "┏━┳┓", "┃ ┃┃", "┡━╇┩", "│ ││", "└─┴┘"


class NotPlainError(Exception):
    """The blocks need something only rich does (wrapping a table, measuring a wide
    character): the caller prints with rich."""


def render_plain(blocks: tuple[Block, ...], width: int) -> str | None:
    """What rich prints for `blocks` on a colourless console `width` cells wide, or None
    when this module cannot be sure it would print the same."""
    try:
        return "".join(_lines(block, width) for block in blocks)
    except NotPlainError:
        return None


def _lines(block: Block, width: int) -> str:
    if isinstance(block, Paragraph):
        return _paragraph(block, width)
    if isinstance(block, Grid):
        return _grid(block, width)
    return _listing(block, width)


def _check(text: str) -> str:
    if not _ONE_CELL.issuperset(text):
        raise NotPlainError(text)
    return text


def _paragraph(paragraph: Paragraph, width: int) -> str:
    """rich's Text: each line wrapped at word boundaries (a word longer than the line
    folded), one line break after the last (so a text ending in one ends in an empty line)."""
    lines = paragraph.plain.split("\n")
    return "".join(_wrap(_check(line), width, fold=True) + "\n" for line in lines)


def _wrap(line: str, width: int, fold: bool = False) -> str:
    """A line wrapped as rich wraps it (rich/_wrap.py's divide_line and Text.rstrip_end):
    a word that does not fit starts the next line, a word longer than a line is cut in
    pieces as wide as it (`fold`; rich crops such a word otherwise: not done here), the
    whitespace after the last word on a line is kept as far as the width allows."""
    if len(line) <= width:
        return line
    if width < 1:
        raise NotPlainError(line)
    breaks, offset = [], 0
    for word in _WORD.finditer(line):
        start, text = word.start(), word.group()
        length = len(text.rstrip())
        if width - offset >= length:
            offset += len(text)
        elif length > width:
            if not fold:
                raise NotPlainError(text)
            pieces = [text[at : at + width] for at in range(0, len(text), width)]
            for piece in pieces:
                if start:
                    breaks.append(start)
                start += len(piece)
            offset = len(pieces[-1])
        elif offset and start:
            breaks.append(start)
            offset = len(text)
    pieces = [line[a:b] for a, b in zip([0, *breaks], [*breaks, len(line)], strict=True)]
    cropped = [_crop_trailing_space(piece, width) for piece in pieces]
    if any(len(piece) > width for piece in cropped):
        raise NotPlainError(line)
    return "\n".join(cropped)


def _crop_trailing_space(piece: str, width: int) -> str:
    """A wrapped line's trailing whitespace cut where the width ends (rich's rstrip_end)."""
    kept = piece.rstrip()
    if len(piece) <= width:
        return piece
    return piece[: max(width, len(kept))]


def _grid(grid: Grid, width: int) -> str:
    """rich's Table: the title on a line as wide as the table, the header between heavy
    rules, each row as many lines as its tallest cell; a table wider than `width` has its
    widest wrapping columns narrowed (their text wrapped) until it fits."""
    if not grid.rows or any(len(row) != len(grid.columns) for row in grid.rows):
        raise NotPlainError(grid.title)
    header = [_cell_text(Cell(name, words=True)) for name in (grid.title, *grid.columns)]
    texts = [header[1:], *([_cell_text(cell) for cell in row] for row in grid.rows)]
    room = width - len(grid.columns) - 1  # the borders take the rest
    natural = [
        min(max(len(_check(row[i])) for row in texts) + 2, room) for i in range(len(grid.columns))
    ]
    wraps = [column not in grid.no_wrap for column in grid.columns]
    widths = _narrowed(natural, wraps, room)
    table_width = sum(widths) + len(widths) + 1
    too_narrow = min(widths) < 3  # no room for a character between the padding
    # rich crops (with an ellipsis) what does not fit in a column that does not wrap
    too_narrow |= any(
        len(row[i]) > widths[i] - 2 for row in texts for i in range(len(widths)) if not wraps[i]
    )
    if too_narrow or table_width > width or len(_check(grid.title)) > table_width:
        raise NotPlainError(grid.title)
    lines = [grid.title.ljust(table_width), _rule(_TOP, widths)]
    lines += _row(_HEAD, texts[0], widths, top=False)
    lines.append(_rule(_RULE, widths))
    for row in texts[1:]:
        lines += _row(_ROW, row, widths, top=True)
    lines.append(_rule(_BOTTOM, widths))
    return "".join(line + "\n" for line in lines)


def _narrowed(widths: list[int], wraps: list[bool], room: int) -> list[int]:
    """The column widths (padding included) rich gives a table with `room` for them: the
    widest wrapping columns lose the excess together, never below the next widest, until
    the table fits (rich's Table._collapse_widths; what rich does after it is not done
    here: the caller gives up on a table that still does not fit)."""
    widths = list(widths)
    while sum(widths) > room and any(wraps):
        excess = sum(widths) - room
        widest = max(w for w, wrap in zip(widths, wraps, strict=True) if wrap)
        below = [w if wrap and w != widest else 0 for w, wrap in zip(widths, wraps, strict=True)]
        step = widest - max(below)
        shrinking = [i for i, w in enumerate(widths) if wraps[i] and w == widest]
        if not step:
            break
        left, share = excess, len(shrinking)
        for i in shrinking:
            taken = min(step, round(left / share))
            widths[i] -= taken
            left, share = left - taken, share - 1
    return widths


def _cell_lines(text: str, width: int) -> list[str]:
    """A cell's text wrapped to `width` and each line padded to it (rich's left justify)."""
    return [line.ljust(width) for line in _wrap(text, width).split("\n")]


def _cell_text(cell: Cell) -> str:
    # rich reads wfx's own words as markup (and :emoji: codes): none to read is the same text
    if "\n" in cell.text or (cell.words and ("[" in cell.text or ":" in cell.text)):
        raise NotPlainError(cell.text)
    return cell.text


def _rule(box: str, widths: list[int]) -> str:
    left, fill, cross, right = tuple(box)
    return left + cross.join(fill * column for column in widths) + right


def _row(box: str, cells: list[str], widths: list[int], top: bool) -> list[str]:
    """The lines of one row: its cells wrapped, the shorter ones filled with blank lines
    below their text (`top`) or above it (the header)."""
    left, _, divider, right = tuple(box)
    wrapped = [_cell_lines(text, column - 2) for text, column in zip(cells, widths, strict=True)]
    height = max(len(lines) for lines in wrapped)
    for lines, column in zip(wrapped, widths, strict=True):
        blank = [" " * (column - 2)] * (height - len(lines))
        lines[:] = lines + blank if top else blank + lines
    return [
        left + divider.join(f" {lines[index]} " for lines in wrapped) + right
        for index in range(height)
    ]


def _listing(listing: Listing, width: int) -> str:
    """rich's borderless two-column table: an empty column `indent - 2` wide, a `│`, the
    lines, each padded to the longest; a table too wide has its second column narrowed
    to the width, its lines folded, the `│` drawn on every line."""
    if listing.indent < 2:
        raise NotPlainError(listing.lines[0])
    margin = " " * (listing.indent - 1)
    longest = max(len(_check(line)) for line in listing.lines)
    room = min(longest, width - listing.indent - 1)
    if room < 1:
        raise NotPlainError(listing.lines[0])
    return "".join(
        f"{margin}│ {piece.ljust(room)}\n"
        for line in listing.lines
        for piece in _wrap(line, room, fold=True).split("\n")
    )
