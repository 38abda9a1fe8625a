"""T17: secrets are masked in every form output may show them in, and ordinary text is intact."""

from __future__ import annotations

import base64
import json
import math
import random
import re
import string
import traceback
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from wfx.runtime.secrets import MASK, MIN_LENGTH, SecretSet


def _pem() -> str:
    rng = random.Random(17)
    body = base64.b64encode(rng.randbytes(1190)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(
        ["-----BEGIN RSA PRIVATE KEY-----", *lines, "-----END RSA PRIVATE KEY-----", ""]
    )


PEM = _pem()
JSON_SECRET = '{"user": "ci", "token": "s3cr3t/t0ken+=", "scopes": ["a b", "c&d"]}'
METACHARACTERS = "a.b*c+(d)?[e]$^|\\"
TOKEN = "ghp_Zx81KqLmN0pQ"
CORPUS = {"PEM": PEM, "JSON": JSON_SECRET, "META": METACHARACTERS, "TOKEN": TOKEN, "ONE": "x"}
SECRETS = SecretSet.of(CORPUS)
MASKED_VALUES = [PEM, JSON_SECRET, METACHARACTERS, TOKEN]


def _lower_hex(text: str) -> str:
    return re.sub("%[0-9A-F]{2}", lambda escape: escape.group().lower(), text)


def url_encodings(value: str) -> dict[str, str]:
    """The value as each documented encoder writes it, computed here independently."""
    encoded = {
        "quote": quote(value),
        "quote-safe-empty": quote(value, safe=""),
        "quote-plus": quote_plus(value),
        "encodeURIComponent": quote(value, safe="!~*'()"),
        "encodeURI": quote(value, safe="!~*'();/?:@&=+$,#"),
        "URLSearchParams": quote_plus(value, safe="*").replace("~", "%7E"),
        "php-urlencode": quote_plus(value).replace("~", "%7E"),
        "every-byte": "".join(f"%{byte:02X}" for byte in value.encode()),
    }
    return encoded | {f"{name}-lower": _lower_hex(form) for name, form in encoded.items()}


def documented_forms(value: str) -> set[str]:
    """The forms the masking policy promises to mask, derived from the policy text alone."""
    data = value.encode()
    b64 = [base64.b64encode(data).decode()]
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode()
        b64.append(encoded[math.ceil(offset * 8 / 6) : (offset + len(data)) * 8 // 6])
    b64 += [form.replace("+", "-").replace("/", "_") for form in b64]
    forms = {
        value,
        *(line.strip() for line in value.splitlines()),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        *url_encodings(value).values(),
        *b64,
    }
    return {form for form in forms if len(form.strip()) >= MIN_LENGTH}


def stream_through(secrets: SecretSet, pieces: Iterable[str], *, lines: bool = False) -> str:
    """Feed `pieces` to one masking stream (each a whole line if `lines`) and join the output."""
    stream = secrets.stream()
    out = [stream.feed(piece, end_of_line=lines) for piece in pieces]
    return "".join([*out, stream.flush()])


def assert_no_secret(text: str) -> None:
    for value in MASKED_VALUES:
        assert value not in text
    for line in PEM.splitlines():
        assert len(line) < MIN_LENGTH or line not in text


# --- the corpus, one channel at a time --------------------------------------------------


@pytest.mark.parametrize("value", MASKED_VALUES, ids=["pem", "json", "meta", "token"])
def test_every_documented_form_is_masked(value: str) -> None:
    for form in documented_forms(value):
        masked = SECRETS.mask(f"before {form} after")
        assert form not in masked
        assert masked.startswith("before ") and masked.endswith(" after")


def test_raw_secret_becomes_three_stars() -> None:
    assert SECRETS.mask(f"token={TOKEN};") == "token=***;"


def test_regex_metacharacters_are_literal() -> None:
    assert SECRETS.mask(f"[{METACHARACTERS}]") == "[***]"
    assert SECRETS.mask("aXb*c+(d)?[e]$^|\\ and ab*c") == "aXb*c+(d)?[e]$^|\\ and ab*c"


def test_pem_printed_line_by_line_is_masked_line_by_line() -> None:
    out = stream_through(SECRETS, [line + "\n" for line in PEM.splitlines()], lines=True)
    assert_no_secret(out)
    assert out == f"{MASK}\n" * len(PEM.splitlines())


def test_pem_printed_whole_and_as_base64_is_masked() -> None:
    encoded = base64.b64encode(PEM.encode()).decode()
    assert SECRETS.mask(f"key:\n{PEM}done") == "key:\n***done"  # the value ends with "\n"
    assert SECRETS.mask(encoded) == MASK


def test_json_secret_and_its_escaped_form() -> None:
    event = json.dumps({"step": "deploy", "output": f"config={JSON_SECRET}"})
    masked = SECRETS.mask(event)
    assert JSON_SECRET not in masked and json.dumps(JSON_SECRET)[1:-1] not in masked
    assert json.loads(masked) == {"step": "deploy", "output": "config=***"}


@pytest.mark.parametrize(
    "appearance",
    [
        base64.b64encode(TOKEN.encode()).decode(),
        base64.b64encode((TOKEN + "\n").encode()).decode(),  # echo "$T" | base64
        base64.b64encode(f"user:{TOKEN}".encode()).decode(),  # HTTP basic auth
        base64.b64encode(f"u:{TOKEN}".encode()).decode(),
        base64.b64encode(f"{TOKEN}".encode() + bytes(range(200, 256))).decode(),
        base64.urlsafe_b64encode(f"ab?{JSON_SECRET}".encode()).decode(),
        quote(JSON_SECRET, safe=""),
        quote_plus(JSON_SECRET),
        json.dumps(METACHARACTERS)[1:-1],
    ],
    ids=[
        "b64",
        "b64-newline",
        "b64-align-0",
        "b64-align-1",
        "b64-align-2",
        "b64-url",
        "url",
        "url-plus",
        "json",
    ],
)
def test_encoded_appearances_are_masked(appearance: str) -> None:
    masked = SECRETS.mask(f"Authorization: Basic {appearance}")
    assert masked.startswith("Authorization: Basic ") and MASK in masked


@pytest.mark.parametrize("encoding", sorted(url_encodings(JSON_SECRET)))
def test_every_url_encoding_is_masked(encoding: str) -> None:
    for value in MASKED_VALUES:
        form = url_encodings(value)[encoding]
        masked = SECRETS.mask(f"https://example.com/?token={form}&x=1")
        assert masked == "https://example.com/?token=***&x=1", value


def test_secret_split_across_two_feeds() -> None:
    stream = SECRETS.stream()
    first = stream.feed(f"token={TOKEN[:5]}", end_of_line=False)
    second = stream.feed(f"{TOKEN[5:]} ok\n", end_of_line=True)
    assert first == "token="
    assert first + second == "token=*** ok\n"


def test_secret_split_across_many_chunks_of_one_long_line() -> None:
    line = "y" * 65530 + TOKEN + "z" * 70000 + METACHARACTERS
    chunks = [line[i : i + 65536] for i in range(0, len(line), 65536)]
    out = stream_through(SECRETS, chunks)
    assert out == "y" * 65530 + MASK + "z" * 70000 + MASK


def test_secret_inside_a_python_traceback() -> None:
    try:
        raise ValueError(f"bad credentials {PEM!r} and {TOKEN}")
    except ValueError:
        text = traceback.format_exc()
    masked = SECRETS.mask(text)
    assert_no_secret(masked)
    assert "Traceback (most recent call last)" in masked and "ValueError: bad credentials" in masked


def test_secret_inside_an_error_message() -> None:
    message = (
        f"step `deploy` failed: curl https://ci:{quote(TOKEN, safe='')}@example.com "
        f"returned 401 for {TOKEN!r}"
    )
    masked = SECRETS.mask(message)
    assert masked == "step `deploy` failed: curl https://ci:***@example.com returned 401 for '***'"


def test_nested_values_are_masked() -> None:
    value = {"out": [TOKEN, ("x", 3, None)], f"k{TOKEN}": {"n": 1.5, "s": f"a {METACHARACTERS}"}}
    assert SECRETS.mask_value(value) == {
        "out": ["***", ("x", 3, None)],
        "k***": {"n": 1.5, "s": "a ***"},
    }


# --- no over-masking --------------------------------------------------------------------


def test_one_character_secret_is_not_masked_and_warned() -> None:
    assert SECRETS.mask("xylophone x") == "xylophone x"
    assert SecretSet.of({"ONE": "x"}).mask("xylophone") == "xylophone"
    assert not SecretSet.of({"ONE": "x"})
    assert SECRETS.warnings == (
        "secret `ONE` is 1 character long: too short to mask without hiding ordinary text; "
        "it is not masked",
    )


def test_short_lines_of_a_multi_line_secret_are_not_masked() -> None:
    secrets = SecretSet.of({"CFG": '{\n  "password": "hunter22"\n}'})
    assert secrets.mask("}\n{\n") == "}\n{\n"
    assert secrets.mask('  "password": "hunter22"\n') == "  ***\n"


def test_text_without_secrets_passes_byte_for_byte() -> None:
    text = "café ☕ \x00\t\r\n\udcff *** ghp_Zx81KqLm N0pQ -----BEGIN RSA PUBLIC KEY-----"
    assert SECRETS.mask(text) is text
    assert stream_through(SECRETS, [text[:9], text[9:30], text[30:]]) == text
    assert SecretSet.of({}).mask(text) is text


def test_unset_and_short_secrets_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"A": "", "B": "ab", "C": "long enough", "D": "   ab  "}
    secrets = SecretSet.from_environment(["A", "B", "C", "D", "E"], environ)
    assert secrets.warnings == (
        "secret `A` is not set",
        "secret `B` is 2 characters long: too short to mask without hiding ordinary text; "
        "it is not masked",
        "secret `D` is 2 characters long: too short to mask without hiding ordinary text; "
        "it is not masked",
        "secret `E` is not set",
    )
    assert dict(secrets.values) == {"A": "", "B": "ab", "C": "long enough", "D": "   ab  ", "E": ""}
    assert secrets.mask("ab long enough") == "ab ***"


def test_multi_line_secret_with_only_short_lines_warns() -> None:
    secrets = SecretSet.of({"K": "ab\ncd\n"})
    assert secrets.warnings == (
        "secret `K` has no line of 4 characters or more: printed line by line it is not masked",
    )
    assert secrets.mask("ab\ncd\n") == "***"
    assert stream_through(secrets, ["ab\n", "cd\n"], lines=True) == "ab\ncd\n"


def test_longest_secret_wins_and_adjacent_ones_merge() -> None:
    secrets = SecretSet.of({"SHORT": "pass", "LONG": "password123"})
    assert secrets.mask("password123 pass") == "*** ***"
    assert secrets.mask("passpassword123") == "***"


def test_overlapping_secrets_leave_no_fragment() -> None:
    secrets = SecretSet.of({"A": "abcdef", "B": "defghi"})
    assert secrets.mask("xabcdefghix") == "x***x"
    assert stream_through(secrets, ["xabc", "def", "ghix"]) == "x***x"


def test_repr_never_shows_values() -> None:
    assert TOKEN not in repr(SECRETS) and TOKEN not in str(SECRETS)


def test_surrogate_escaped_environment_value() -> None:
    value = b"tok\xffen-\xfe".decode("utf-8", "surrogateescape")
    secrets = SecretSet.of({"RAW": value})
    assert secrets.mask(f"[{value}]") == "[***]"
    assert secrets.mask(base64.b64encode(b"tok\xffen-\xfe").decode()) == MASK


def test_stream_holds_back_only_a_possible_secret_start() -> None:
    stream = SECRETS.stream()
    assert stream.feed("hello gh", end_of_line=False) == "hello "
    assert stream.feed("x", end_of_line=False) == "ghx"
    assert stream.feed("", end_of_line=True) == ""


# --- properties -------------------------------------------------------------------------

SECRET_TEXT = st.text(
    # A secret containing `***` could be re-formed by a mask next to ordinary text.
    st.characters(codec="utf-8", exclude_characters="*"),
    min_size=MIN_LENGTH,
    max_size=40,
).filter(lambda value: len(value.strip()) >= MIN_LENGTH)
SURROUNDING = st.text(st.characters(codec="utf-8"), max_size=60)
ASCII_SURROUNDING = st.text(string.ascii_letters + string.digits + " =/+:-_\n", max_size=60)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(cut, len(text)) for cut in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(
    secret=SECRET_TEXT,
    before=SURROUNDING,
    after=SURROUNDING,
    cuts=st.lists(st.integers(0, 200), max_size=6),
)
def test_stream_never_emits_the_secret(
    secret: str, before: str, after: str, cuts: list[int]
) -> None:
    secrets = SecretSet.of({"S": secret})
    text = before + secret + after + secret
    out = stream_through(secrets, _split(text, cuts))
    assert secret not in out
    assert out == secrets.mask(text)


@settings(max_examples=300, deadline=None)
@given(
    secret=SECRET_TEXT,
    before=ASCII_SURROUNDING,
    after=ASCII_SURROUNDING,
    cuts=st.lists(st.integers(0, 200), max_size=6),
    pick=st.integers(0, 100),
)
def test_stream_never_emits_any_documented_form(
    secret: str, before: str, after: str, cuts: list[int], pick: int
) -> None:
    forms = sorted(documented_forms(secret))
    form = forms[pick % len(forms)]
    out = stream_through(SecretSet.of({"S": secret}), _split(before + form + after, cuts))
    assert form not in out and MASK in out


@settings(max_examples=300, deadline=None)
@given(
    secret=SECRET_TEXT,
    text=st.one_of(SURROUNDING, ASCII_SURROUNDING),
    cuts=st.lists(st.integers(0, 80), max_size=6),
)
def test_text_without_a_form_is_untouched(secret: str, text: str, cuts: list[int]) -> None:
    assume(not any(form in text for form in documented_forms(secret)))
    secrets = SecretSet.of({"S": secret})
    assert secrets.mask(text) == text
    assert stream_through(secrets, _split(text, cuts)) == text


@settings(max_examples=300, deadline=None)
@given(
    secret=SECRET_TEXT,
    before=ASCII_SURROUNDING,
    after=ASCII_SURROUNDING,
    cuts=st.lists(st.integers(0, 300), max_size=6),
)
def test_every_url_encoding_of_any_secret_is_masked(
    secret: str, before: str, after: str, cuts: list[int]
) -> None:
    secrets = SecretSet.of({"S": secret})
    for encoding, form in url_encodings(secret).items():
        text = f"{before}={form}&{after}"
        for out in (secrets.mask(text), stream_through(secrets, _split(text, cuts))):
            assert form not in out and MASK in out, encoding


@settings(max_examples=100, deadline=None)
@given(prefix=st.binary(max_size=8), suffix=st.binary(max_size=8), secret=SECRET_TEXT)
def test_base64_at_any_alignment_is_masked(prefix: bytes, suffix: bytes, secret: str) -> None:
    encoded = base64.b64encode(prefix + secret.encode() + suffix).decode()
    masked = SecretSet.of({"S": secret}).mask(encoded)
    assert MASK in masked and len(masked) < len(encoded)


# Masking throughput is a benchmark: `python bench/run.py secrets_mask`.
