"""`wfx lsp` end to end: a real LSP client (pytest-lsp) talks to `wfx lsp` in a
subprocess over stdio, as an editor does."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "wfx", "lsp", "--stdio"])
#: as docs/editor.md starts it (no `--stdio`, which clients may add and the server ignores)
AS_DOCUMENTED = ClientServerConfig(server_command=[sys.executable, "-m", "wfx", "lsp"])
PUBLISH = types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS

WORKFLOW = """\
wfx: 1
defaults:
  timeout: 30s
steps:
  - id: build
    run: echo build
    retries: 2
  - id: test
    needs: [build]
    run: echo "${{ steps.build.outputs.x }}"
"""

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=SERVER, scope="module")
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    params = types.InitializeParams(
        capabilities=pytest_lsp.client_capabilities("visual-studio-code")
    )
    await lsp_client.initialize_session(params)
    yield
    await lsp_client.shutdown_session()


async def published(
    client: LanguageClient, uri: str, send: Callable[[], None]
) -> types.PublishDiagnosticsParams:
    """Do `send`, then wait for the diagnostics the server publishes for `uri`."""
    while True:
        future = client.protocol.wait_for_notification(PUBLISH)
        send()
        send = lambda: None  # noqa: E731 - wait again without sending twice
        params: types.PublishDiagnosticsParams = await asyncio.wait_for(
            asyncio.wrap_future(future), 10
        )
        if params.uri == uri:
            return params


def open_document(client: LanguageClient, uri: str, text: str) -> Callable[[], None]:
    item = types.TextDocumentItem(uri=uri, language_id="yaml", version=1, text=text)
    return lambda: client.text_document_did_open(types.DidOpenTextDocumentParams(item))


def change(
    client: LanguageClient, uri: str, version: int, line: int, start: int, end: int, text: str
) -> None:
    where = types.Range(types.Position(line, start), types.Position(line, end))
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=version, uri=uri),
            [types.TextDocumentContentChangePartial(range=where, text=text)],
        )
    )


def uri_of(tmp_path: Path, name: str) -> str:
    return (tmp_path / name).as_uri()


async def test_diagnostics_after_open_and_after_each_change(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = uri_of(tmp_path, "typing.yaml")
    opened = await published(client, uri, open_document(client, uri, WORKFLOW))
    assert list(opened.diagnostics) == []
    assert opened.version == 1

    def typo() -> None:  # `needs: [build]` -> `needs: [buidl]`, in two keystrokes
        change(client, uri, 2, 8, 14, 17, "i")
        change(client, uri, 3, 8, 15, 15, "dl")

    after = await published(client, uri, typo)
    assert after.version == 3  # one check for both keystrokes: the last version
    [problem] = after.diagnostics
    assert problem.source == "wfx"
    assert problem.code == "compile.unknown-need"
    assert problem.severity == types.DiagnosticSeverity.Error
    assert "`needs` names unknown step `buidl`" in problem.message
    assert problem.range == types.Range(types.Position(8, 12), types.Position(8, 17))

    fixed = await published(client, uri, lambda: change(client, uri, 4, 8, 12, 17, "build"))
    assert list(fixed.diagnostics) == []


async def test_diagnostics_on_request(client: LanguageClient, tmp_path: Path) -> None:
    uri = uri_of(tmp_path, "pulled.yaml")
    text = WORKFLOW.replace("retries: 2", "retries: two")
    await published(client, uri, open_document(client, uri, text))
    report = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(types.TextDocumentIdentifier(uri))
    )
    assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
    [problem] = report.items
    assert (problem.code, problem.range.start) == ("schema.invalid-value", types.Position(6, 13))


async def test_half_typed_yaml_is_a_diagnostic_not_a_crash(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = uri_of(tmp_path, "broken.yaml")
    broken = WORKFLOW.replace("needs: [build]", "needs: [build")
    params = await published(client, uri, open_document(client, uri, broken))
    assert [d.code for d in params.diagnostics] == ["yaml.syntax"]
    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), types.Position(8, 17))
    )
    assert result is not None
    assert "build" in [item.label for item in _items(result)]


async def test_hover_shows_the_schema_description_and_a_steps_settings(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = uri_of(tmp_path, "hover.yaml")
    await published(client, uri, open_document(client, uri, WORKFLOW))
    on_key = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(6, 6))
    )
    assert on_key is not None
    assert isinstance(on_key.contents, types.MarkupContent)
    assert "How often to retry a failed attempt" in on_key.contents.value
    on_step = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(4, 10))
    )
    assert on_step is not None
    assert isinstance(on_step.contents, types.MarkupContent)
    assert "timeout = 30s  (from defaults (line 3))" in on_step.contents.value
    assert "retries = 2" in on_step.contents.value


async def test_completion_of_keys_needs_and_step_ids_in_expressions(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = uri_of(tmp_path, "complete.yaml")
    text = WORKFLOW + "  - id: ship\n    needs: [\n    run: echo ${{ steps. }}\n    ti\n"
    await published(client, uri, open_document(client, uri, text))

    async def labels(line: int, character: int) -> list[str]:
        result = await client.text_document_completion_async(
            types.CompletionParams(
                types.TextDocumentIdentifier(uri), types.Position(line, character)
            )
        )
        assert result is not None
        return [item.label for item in _items(result)]

    assert "timeout" in await labels(13, 6)
    assert "run" not in await labels(13, 6)  # the step already has one
    assert await labels(11, 12) == ["build", "test"]  # not `ship` itself
    assert await labels(12, 24) == ["build", "test", "ship"]


async def test_definition_from_needs_and_from_an_expression(
    client: LanguageClient, tmp_path: Path
) -> None:
    uri = uri_of(tmp_path, "jump.yaml")
    await published(client, uri, open_document(client, uri, WORKFLOW))
    build_id = types.Range(types.Position(4, 8), types.Position(4, 13))
    for line, character in [(8, 14), (9, 25)]:
        found = await client.text_document_definition_async(
            types.DefinitionParams(
                types.TextDocumentIdentifier(uri), types.Position(line, character)
            )
        )
        assert found == types.Location(uri, build_id)


def _items(result: types.CompletionList | list[types.CompletionItem]) -> list[types.CompletionItem]:
    return result.items if isinstance(result, types.CompletionList) else result


@pytest_lsp.fixture(config=AS_DOCUMENTED, scope="module")
async def pulling_client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    capabilities = pytest_lsp.client_capabilities("neovim")  # the latest: it pulls
    assert capabilities.text_document is not None
    assert capabilities.text_document.diagnostic is not None
    await lsp_client.initialize_session(types.InitializeParams(capabilities=capabilities))
    yield
    await lsp_client.shutdown_session()


async def test_a_client_that_pulls_diagnostics_gets_none_pushed(
    pulling_client: LanguageClient, tmp_path: Path
) -> None:
    uri = uri_of(tmp_path, "pull-only.yaml")
    text = WORKFLOW.replace("needs: [build]", "needs: [nope]")
    open_document(pulling_client, uri, text)()
    report = await pulling_client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(types.TextDocumentIdentifier(uri))
    )
    assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
    assert [d.code for d in report.items] == ["compile.unknown-need"]
    assert uri not in pulling_client.diagnostics  # a push on open would have come first
