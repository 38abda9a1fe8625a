"""Text from a workflow or a run shown so that it cannot act on the screen.

A step name, a path, a reason or a value may hold characters a terminal acts on (an
escape sequence that colours, moves the cursor, rewrites a line or sets the window's
title), characters that do not show (zero-width ones) or that reorder what is shown
(bidirectional overrides). Every renderer that prints such text passes it through
:func:`visible`. Kept apart from the plan renderers so that a run imports nothing more.
"""

from __future__ import annotations

import unicodedata

#: characters a terminal or a browser would act on or not show: controls, zero-width and
#: bidirectional formatting (Unicode category Cc, Cf, Zl, Zp), except newline and tab
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def visible(text: str) -> str:
    """`text` with every invisible or control character (but newline and tab) written as
    `<U+XXXX>`, so nothing in it can hide, reorder or overwrite what is shown."""
    if text.isprintable():
        return text
    return "".join(
        f"<U+{ord(c):04X}>" if c not in "\n\t" and unicodedata.category(c) in _INVISIBLE else c
        for c in text
    )


def indented(text: str, indent: str) -> str:
    """:func:`visible` text whose later lines are indented by `indent`, so that none of
    them reads as a line of its own (or as a CI runner's `::command`)."""
    return visible(text).replace("\n", "\n" + indent)
