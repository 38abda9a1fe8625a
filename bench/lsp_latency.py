"""How long `wfx lsp` takes to answer for a 1,000-step file after a one-character change.

`python bench/lsp_latency.py analysis` times the pure function the server calls per
version (every stage `wfx validate` runs, on the buffer's text), warm as in a server that
has checked the previous version; `python bench/lsp_latency.py server` times the same
through a real `wfx lsp` subprocess: a `didChange` of one character, then a
`textDocument/diagnostic` request, until its answer arrives; `python bench/lsp_latency.py
pushed` the same for a client that does not pull, until the diagnostics the server
pushes for that version arrive (its pause after the last keystroke included). Each prints
milliseconds
(the median over rounds, each round a different step changed) on its last line; the
first also prints its CPU time on the line before, with the CPU time of a reference loop
that says how fast the machine is running Python at the moment (on a loaded machine the
wall-clock figure can be several times the CPU time).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

ROUNDS = 15
STEPS = 1_000


def workflow(steps: int) -> str:
    """`steps` steps in a chain, each with a script, a timeout, a retry policy, an env value,
    `needs` and a condition reading the previous step's output: a large, realistic file."""
    lines = [
        "wfx: 1",
        "name: a thousand steps",
        "inputs:",
        "  target: {type: choice, enum: [dev, prd], default: dev}",
        "defaults:",
        "  timeout: 5m",
        "steps:",
    ]
    for i in range(steps):
        lines += [
            f"  - id: s{i}",
            f"    run: echo {i} ${{{{ inputs.target }}}}",
            "    timeout: 30s",
            "    retries: {max: 2, delay: 1s}",
            "    env:",
            f'      N: "{i}"',
        ]
        if i:
            lines += [
                f"    needs: [s{i - 1}]",
                f"    condition: ${{{{ steps.s{i - 1}.outputs.ok != 'no' }}}}",
            ]
    return "\n".join(lines) + "\n"


def typed(text: str, round_: int) -> str:
    """`text` after one keystroke in the script of a step that differs each round."""
    step = 37 * round_ % STEPS
    return text.replace(f"    run: echo {step} ", f"    run: echo {step}x ", 1)


def reference_loop_ms() -> float:
    """CPU time of a plain Python loop of 10 million additions: how fast this machine runs
    Python right now (a recent laptop: about 400 ms), to read the figures against."""
    started = time.process_time()
    total = 0
    for number in range(10_000_000):
        total += number
    return (time.process_time() - started) * 1000


def analysis_ms() -> tuple[float, float]:
    """The pure function, warm: the median time to all the diagnostics of a new version,
    wall-clock and on the CPU (a loaded machine inflates the first far more)."""
    import gc

    from wfx.cli import _GC_THRESHOLDS
    from wfx.lsp.analysis import analyse

    gc.set_threshold(*_GC_THRESHOLDS)  # as in `wfx lsp`, which runs under `wfx`'s main()
    text = workflow(STEPS)
    assert analyse(text, "big.yaml").diagnostics == []
    samples, cpu = [], []
    for round_ in range(1, ROUNDS + 1):
        changed = typed(text, round_)
        started, cpu_started = time.perf_counter(), time.process_time()
        found = analyse(changed, "big.yaml").diagnostics
        samples.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        assert found == [], found
    return statistics.median(samples) * 1000, statistics.median(cpu) * 1000


async def server_ms() -> float:
    """Through `wfx lsp`: from sending the change to receiving the diagnostics report."""
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    client = LanguageClient("bench", "1")
    await client.start_io(sys.executable, "-m", "wfx", "lsp", "--stdio")
    pull = types.DiagnosticClientCapabilities()
    capabilities = types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(diagnostic=pull)
    )
    await client.initialize_async(types.InitializeParams(capabilities=capabilities))
    client.initialized(types.InitializedParams())
    uri = "file:///bench/big.yaml"
    text = workflow(STEPS)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "yaml", 1, text))
    )
    request = types.DocumentDiagnosticParams(types.TextDocumentIdentifier(uri))
    await client.text_document_diagnostic_async(request)
    samples = []
    for round_ in range(1, ROUNDS + 1):
        changed = typed(text, round_)
        started = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(round_ + 1, uri),
                [types.TextDocumentContentChangeWholeDocument(changed)],
            )
        )
        report = await client.text_document_diagnostic_async(request)
        samples.append(time.perf_counter() - started)
        assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
        assert list(report.items) == [], report.items
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return statistics.median(samples) * 1000


async def pushed_ms() -> float:
    """Through `wfx lsp`, for a client that does not pull: from sending the change to the
    diagnostics the server pushes for that version (its pause after the last keystroke,
    `DEBOUNCE`, included: an editor shows them then)."""
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    client = LanguageClient("bench", "1")
    arrived: asyncio.Queue[types.PublishDiagnosticsParams] = asyncio.Queue()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def _published(params: types.PublishDiagnosticsParams) -> None:
        arrived.put_nowait(params)

    await client.start_io(sys.executable, "-m", "wfx", "lsp", "--stdio")
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
    client.initialized(types.InitializedParams())
    uri = "file:///bench/big.yaml"
    text = workflow(STEPS)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "yaml", 1, text))
    )
    await arrived.get()
    samples = []
    for round_ in range(1, ROUNDS + 1):
        started = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(round_ + 1, uri),
                [types.TextDocumentContentChangeWholeDocument(typed(text, round_))],
            )
        )
        params = await arrived.get()
        samples.append(time.perf_counter() - started)
        assert params.version == round_ + 1 and list(params.diagnostics) == [], params
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return statistics.median(samples) * 1000


def main() -> None:
    """Print the chosen figure in milliseconds."""
    if len(sys.argv) > 1 and sys.argv[1] == "server":
        print(f"{asyncio.run(server_ms()):.1f}")
        return
    if len(sys.argv) > 1 and sys.argv[1] == "pushed":
        print(f"{asyncio.run(pushed_ms()):.1f}")
        return
    wall, cpu = analysis_ms()
    print(f"cpu {cpu:.0f} ms, reference loop {reference_loop_ms():.0f} ms")
    print(f"{wall:.1f}")


if __name__ == "__main__":
    main()
