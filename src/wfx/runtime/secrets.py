"""Secret masking: every form of a run's secrets becomes `***` before text leaves the engine.

A secret is masked only if it has at least `MIN_LENGTH` characters once surrounding
whitespace is stripped; shorter ones would hide ordinary text (actions/runner #326) and
get a warning instead. For a maskable secret these forms are masked, each only if it is
itself at least `MIN_LENGTH` characters long (surrounding whitespace stripped):

- the raw value, and each line of it (stripped), so a key printed line by line is masked;
- the JSON-escaped form (`json.dumps(value)[1:-1]`, ASCII-escaped and not) and the
  Python-repr-escaped form (`repr(value)[1:-1]`, as a traceback shows it);
- the percent-encoded (URL-encoded) forms of the UTF-8 bytes, as each common encoder writes
  them (:data:`PERCENT_ENCODINGS`: Python's `quote`, `quote(safe="")` and `quote_plus`,
  JavaScript's `encodeURIComponent`, `encodeURI` and `URLSearchParams`, `jq @uri`,
  `curl --data-urlencode`, HTML forms, and every byte encoded as `od`/`xxd` pipelines do),
  each with upper- and lower-case hex digits;
- the base64 forms of the UTF-8 bytes: the value encoded alone (padded), and the characters
  that depend only on the value when it sits at each of the 3 byte alignments inside a
  longer base64 text; each in the standard and the URL-safe alphabet.

Masking is plain text search with one compiled alternation of escaped forms, longest first;
overlapping or adjacent occurrences become a single `***`.
"""

from __future__ import annotations

import base64
import json
import re
import string
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MASK = "***"
MIN_LENGTH = 4

#: How common encoders percent-encode text: the ASCII characters each keeps as they are and
#: what a space becomes; every other byte is `%XX`.
_ALPHANUMERIC = string.ascii_letters + string.digits
PERCENT_ENCODINGS: tuple[tuple[str, str, str], ...] = (
    ("quote(s, safe=''), jq 1.7 @uri, curl --data-urlencode", _ALPHANUMERIC + "-._~", "%20"),
    ("urllib.parse.quote(s)", _ALPHANUMERIC + "-._~/", "%20"),
    ("quote_plus(s)", _ALPHANUMERIC + "-._~", "+"),
    ("URLSearchParams, HTML forms, Java URLEncoder", _ALPHANUMERIC + "-._*", "+"),
    ("PHP urlencode", _ALPHANUMERIC + "-._", "+"),
    ("encodeURIComponent, jq 1.6 @uri", _ALPHANUMERIC + "-_.!~*'()", "%20"),
    ("encodeURI", _ALPHANUMERIC + "-_.!~*'();/?:@&=+$,#", "%20"),
    ("every byte: od -An -tx1, xxd -p", "", "%20"),
)
_PERCENT_ESCAPE = re.compile("%[0-9A-F]{2}")

_URLSAFE = str.maketrans("+/", "-_")

Span = tuple[int, int]


@dataclass(frozen=True)
class SecretSet:
    """The secrets of one run and every form of them that output may contain."""

    values: Mapping[str, str] = field(repr=False)
    warnings: tuple[str, ...] = ()
    _matcher: _Matcher | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_matcher", _Matcher.build(self.values.values()))

    @classmethod
    def from_environment(cls, names: Iterable[str], environ: Mapping[str, str]) -> SecretSet:
        """The secrets `names` as read from `environ`; unset ones read as ""."""
        return cls.of({name: environ.get(name, "") for name in names})

    @classmethod
    def of(cls, values: Mapping[str, str]) -> SecretSet:
        """The secrets `values` (name -> value), with a warning for each one not masked."""
        warnings = (_warning(name, value) for name, value in values.items())
        return cls(
            values=types.MappingProxyType(dict(values)),
            warnings=tuple(warning for warning in warnings if warning is not None),
        )

    def mask(self, text: str) -> str:
        """`text` with every form of every secret replaced by `***`."""
        if self._matcher is None:
            return text
        spans = self._matcher.spans(text)
        return _render(text, spans, 0, len(text), continuing=False) if spans else text

    def mask_value(self, value: Any) -> Any:
        """`value` with the strings inside it (dicts, lists, tuples, recursively) masked."""
        if self._matcher is None:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, Mapping):
            return {self.mask_value(key): self.mask_value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.mask_value(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.mask_value(item) for item in value)
        return value

    def stream(self) -> MaskingStream:
        """A new masker for one output stream (stdout or stderr of one step)."""
        return MaskingStream(self._matcher)

    def __bool__(self) -> bool:
        """True if at least one secret is masked."""
        return self._matcher is not None


class MaskingStream:
    """Masks a stream that arrives in pieces, holding back a tail that could start a secret."""

    def __init__(self, matcher: _Matcher | None) -> None:
        self._matcher = matcher
        # Already emitted text, kept to mask the rest of a form that straddles the last cut.
        self._context = ""
        self._pending = ""
        self._in_mask = False

    def feed(self, piece: str, *, end_of_line: bool) -> str:
        """Take `piece` (`end_of_line`: it ends a line); return the masked text safe to emit now."""
        matcher = self._matcher
        if matcher is None:
            return piece
        text = self._context + self._pending + piece
        base = len(self._context)
        cut = len(text) if end_of_line else max(base, len(text) - matcher.held(text))
        emitted = self._emit(matcher, text, base, cut)
        if end_of_line:
            self._reset()
        return emitted

    def flush(self) -> str:
        """The text still held back, masked; the stream is then empty."""
        return self.feed("", end_of_line=True)

    def _emit(self, matcher: _Matcher, text: str, base: int, cut: int) -> str:
        spans = matcher.spans(text)
        if not spans:
            emitted = text[base:cut]
        else:
            emitted = _render(text, spans, base, cut, continuing=self._in_mask)
        if cut > base:
            self._in_mask = any(start < cut <= end for start, end in spans)
        self._context = text[max(0, cut - matcher.longest + 1) : cut]
        self._pending = text[cut:]
        return emitted

    def _reset(self) -> None:
        self._context = self._pending = ""
        self._in_mask = False


@dataclass(frozen=True)
class _Matcher:
    """Finds the forms of a set of secrets in text."""

    forms: tuple[str, ...]
    pattern: re.Pattern[str]
    by_first: Mapping[str, tuple[str, ...]]
    longest: int

    @classmethod
    def build(cls, values: Iterable[str]) -> _Matcher | None:
        forms = {form for value in values if _maskable(value) for form in _forms_of(value)}
        if not forms:
            return None
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        by_first: dict[str, tuple[str, ...]] = {}
        for form in ordered:
            by_first[form[0]] = (*by_first.get(form[0], ()), form)
        pattern = re.compile("|".join(map(re.escape, ordered)))
        return cls(
            forms=tuple(ordered), pattern=pattern, by_first=by_first, longest=len(ordered[0])
        )

    def spans(self, text: str) -> list[Span]:
        """Where forms occur in `text`, overlapping and adjacent occurrences merged."""
        spans: list[Span] = []
        if not self.occurs_in(text):
            return spans
        found = self.pattern.search(text)
        while found is not None:
            start, end = found.span()
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
            found = self.pattern.search(text, start + 1)
        return spans

    def occurs_in(self, text: str) -> bool:
        """Whether any form occurs in `text`."""
        # One substring search per form beats the regex alternation ~3x on lines with no secret.
        return any(map(text.__contains__, self.forms))

    def held(self, text: str) -> int:
        """The length of the longest end of `text` that is the start of a longer form."""
        for index in range(max(0, len(text) - self.longest + 1), len(text)):
            forms = self.by_first.get(text[index])
            if forms is not None and _continues(text[index:], forms):
                return len(text) - index
        return 0


def _continues(tail: str, forms: Iterable[str]) -> bool:
    return any(len(form) > len(tail) and form.startswith(tail) for form in forms)


def _render(text: str, spans: Iterable[Span], low: int, high: int, *, continuing: bool) -> str:
    """`text[low:high]` with `spans` masked; `continuing`: the text before `low` ended masked."""
    parts: list[str] = []
    position = low
    for start, end in spans:
        if end <= low or start >= high:
            continue
        parts.append(text[position:start] if start > position else "")
        if not (continuing and start <= low):
            parts.append(MASK)
        position = max(position, min(end, high))
    parts.append(text[position:high])
    return "".join(parts)


def _warning(name: str, value: str) -> str | None:
    if not value:
        return f"secret `{name}` is not set"
    if not _maskable(value):
        length = len(value.strip())
        return (
            f"secret `{name}` is {length} character{'' if length == 1 else 's'} long: "
            "too short to mask without hiding ordinary text; it is not masked"
        )
    if not _line_forms(value) and len(value.splitlines()) > 1:
        return (
            f"secret `{name}` has no line of {MIN_LENGTH} characters or more: "
            "printed line by line it is not masked"
        )
    return None


def _maskable(text: str) -> bool:
    return len(text.strip()) >= MIN_LENGTH


def _forms_of(value: str) -> set[str]:
    forms = {value, *_line_forms(value), *_escaped_forms(value), *_url_forms(value)}
    forms.update(_base64_forms(_utf8(value)))
    return {form for form in forms if _maskable(form)}


def _line_forms(value: str) -> set[str]:
    return {line.strip() for line in value.splitlines() if _maskable(line)}


def _escaped_forms(value: str) -> set[str]:
    return {
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }


def _url_forms(value: str) -> set[str]:
    data = _utf8(value)
    forms = {_percent_encoded(data, keep, space) for _, keep, space in PERCENT_ENCODINGS}
    return forms | {_lower_hex(form) for form in forms}


def _percent_encoded(data: bytes, keep: str, space: str) -> str:
    kept = keep.encode("ascii")
    return "".join(
        chr(byte) if byte in kept else space if byte == 0x20 else f"%{byte:02X}" for byte in data
    )


def _lower_hex(form: str) -> str:
    return _PERCENT_ESCAPE.sub(lambda escape: escape.group().lower(), form)


def _utf8(value: str) -> bytes:
    # os.environ keeps undecodable bytes as surrogate escapes: the child prints the bytes.
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _base64_forms(data: bytes) -> set[str]:
    standard = {base64.b64encode(data).decode("ascii")}
    standard.update(_aligned_base64(data, offset) for offset in range(3))
    return standard | {form.translate(_URLSAFE) for form in standard}


def _aligned_base64(data: bytes, offset: int) -> str:
    """The base64 characters that depend only on `data` when it follows `offset` other bytes."""
    encoded = base64.b64encode(bytes(offset) + data).decode("ascii")
    first = -(-offset * 8 // 6)
    last = (offset + len(data)) * 8 // 6
    return encoded[first:last]
