"""The language server: pygls wiring around the pure features. Documents are analysed once
per version. A client that pulls diagnostics (`textDocument/diagnostic`, LSP 3.17) gets them
when it asks; to any other client they are pushed at once on open and save, and a short
pause after the last change while typing."""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import ServerTextPosition, ServerTextRange

from wfx import __version__
from wfx.diagnostics import Severity
from wfx.lsp import features
from wfx.lsp.analysis import Analysis, LspDiagnostic, analyse
from wfx.lsp.text import Position, Range

#: the pause after the last keystroke before a document is checked again (seconds)
DEBOUNCE = 0.15

_SEVERITIES = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
}
_KINDS = {
    "key": types.CompletionItemKind.Property,
    "value": types.CompletionItemKind.EnumMember,
    "step": types.CompletionItemKind.Reference,
    "name": types.CompletionItemKind.Variable,
}
_log = logging.getLogger(__name__)


class WfxLanguageServer(LanguageServer):
    """A LanguageServer that remembers the analysis of each open document's latest text."""

    def __init__(self) -> None:
        super().__init__("wfx", __version__)
        self.analyses: dict[str, Analysis] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}

    def analysis(self, uri: str) -> tuple[TextDocument, Analysis]:
        """The document at `uri` and the analysis of its current text (made when missing)."""
        document = self.workspace.get_text_document(uri)
        found = self.analyses.get(uri)
        if found is None or found.text != document.source:
            found = analyse(document.source, to_fs_path(uri) or uri)
            self.analyses[uri] = found
        return document, found

    @property
    def client_pulls(self) -> bool:
        """True when the client asks for diagnostics itself (so they are never pushed)."""
        return self.client_capabilities.text_document is not None and (
            self.client_capabilities.text_document.diagnostic is not None
        )

    def diagnostics(self, uri: str) -> tuple[TextDocument, list[types.Diagnostic]]:
        """The document at `uri` and its diagnostics, as the client speaks of them."""
        document, analysis = self.analysis(uri)
        return document, [_diagnostic(document, d) for d in analysis.diagnostics]

    def publish(self, uri: str) -> None:
        """Check the document at `uri` now and push its diagnostics."""
        self.timers.pop(uri, None)
        if uri not in self.workspace.text_documents or self.client_pulls:
            return
        document, diagnostics = self.diagnostics(uri)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri, diagnostics, document.version)
        )

    def publish_soon(self, uri: str) -> None:
        """Publish after DEBOUNCE seconds unless another change comes first."""
        self.cancel(uri)
        if self.client_pulls:
            return
        self.timers[uri] = asyncio.get_running_loop().call_later(DEBOUNCE, self.publish, uri)

    def cancel(self, uri: str) -> None:
        """Forget a pending publication for `uri`."""
        timer = self.timers.pop(uri, None)
        if timer is not None:
            timer.cancel()


def build_server() -> WfxLanguageServer:
    """A server with every feature registered."""
    server = WfxLanguageServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: WfxLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: WfxLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.publish_soon(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: WfxLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.cancel(params.text_document.uri)
        ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: WfxLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.cancel(uri)
        ls.analyses.pop(uri, None)
        if not ls.client_pulls:
            ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri, []))

    @server.feature(
        types.TEXT_DOCUMENT_DIAGNOSTIC,
        types.DiagnosticOptions(inter_file_dependencies=False, workspace_diagnostics=False),
    )
    def diagnostic(
        ls: WfxLanguageServer, params: types.DocumentDiagnosticParams
    ) -> types.RelatedFullDocumentDiagnosticReport:
        _, diagnostics = ls.diagnostics(params.text_document.uri)
        return types.RelatedFullDocumentDiagnosticReport(diagnostics)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: WfxLanguageServer, params: types.HoverParams) -> types.Hover | None:
        document, analysis = ls.analysis(params.text_document.uri)
        found = features.hover(analysis, _position(document, params.position))
        if found is None:
            return None
        content = types.MarkupContent(types.MarkupKind.Markdown, found.markdown)
        return types.Hover(content, _range(document, found.range))

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[".", " ", "[", ","]),
    )
    def completion(ls: WfxLanguageServer, params: types.CompletionParams) -> types.CompletionList:
        document, analysis = ls.analysis(params.text_document.uri)
        found = features.complete(analysis, _position(document, params.position))
        return types.CompletionList(False, [_completion_item(document, c) for c in found])

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: WfxLanguageServer, params: types.DefinitionParams) -> types.Location | None:
        document, analysis = ls.analysis(params.text_document.uri)
        found = features.definition(analysis, _position(document, params.position))
        if found is None:
            return None
        return types.Location(params.text_document.uri, _range(document, found))

    return server


def serve() -> None:
    """Run the server over stdin and stdout until the client says exit."""
    build_server().start_io()


def _position(document: TextDocument, position: types.Position) -> Position:
    found = document.position_from_client_units(position)
    return Position(found.line, found.character)


def _range(document: TextDocument, where: Range) -> types.Range:
    start = ServerTextPosition(where.start.line, where.start.character)
    end = ServerTextPosition(where.end.line, where.end.character)
    return document.range_to_client_units(ServerTextRange(start, end))


def _diagnostic(document: TextDocument, found: LspDiagnostic) -> types.Diagnostic:
    return types.Diagnostic(
        range=_range(document, found.range),
        message=found.message,
        severity=_SEVERITIES[found.severity],
        code=found.code,
        source="wfx",
    )


def _completion_item(document: TextDocument, found: features.Completion) -> types.CompletionItem:
    documentation = (
        types.MarkupContent(types.MarkupKind.Markdown, found.documentation)
        if found.documentation
        else None
    )
    return types.CompletionItem(
        label=found.label,
        kind=_KINDS[found.kind],
        detail=found.detail or None,
        documentation=documentation,
        text_edit=types.TextEdit(_range(document, found.replace), found.insert),
    )
