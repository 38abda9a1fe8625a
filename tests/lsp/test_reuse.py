"""An editor re-checks the whole file at every keystroke; the stages reuse what did not
change (the schema skips steps it has seen valid, the model reuses steps whose text and
data are unchanged). Whatever was checked before, every version gets exactly the model
and the diagnostics a check from scratch gives."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfx import api, model, schema
from wfx.diagnostics import DiagnosticsError
from wfx.source import loads

WORKFLOW = """\
wfx: 1
inputs:
  target: {type: choice, enum: [dev, prd], default: dev}
defaults: &defaults
  timeout: 30s
steps:
  - id: build
    run: |
      echo "${{ inputs.target }}"
      make all
    retries: {max: 2, delay: 1s}
  - id: checks
    type: parallel
    steps:
      - {id: unit, run: 'echo ${{ inputs.target }}'}
      - id: lint
        cmd: [echo, "${{ steps.build.outputs.x }}"]
        env: {A: "${{ inputs.target }}"}
  - id: deploy
    needs: [build, checks]
    condition: ${{ inputs.target == 'prd' }}
    run: echo deploy
    rollback:
      run: echo undo ${{ steps.build.outputs.x }}
finally:
  - id: report
    run: echo done
"""

edit = st.tuples(
    st.integers(0, len(WORKFLOW)),
    st.integers(0, 3),
    st.text(alphabet=" \n-:'\"{}[],$xyz17|", max_size=3),
)


def fresh(text: str) -> list[str]:
    schema._KNOWN_VALID.clear()
    model._BUILT_STEPS.clear()
    return shown(text)


def shown(text: str) -> list[str]:
    return [f"{d.span}:{d.code}:{d.message}" for d in api.check_text(text, "wf.yaml").diagnostics]


def built(text: str, *, reuse: bool) -> object:
    try:
        document = loads(text, "wf.yaml")
    except DiagnosticsError:
        return None
    if schema.validate(document):
        return None
    return model.build_with_problems(document, reuse_steps=reuse)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(edit, min_size=1, max_size=6))
def test_every_version_is_checked_as_from_scratch(edits: list[tuple[int, int, str]]) -> None:
    text = WORKFLOW
    versions = [text]
    for offset, removed, inserted in edits:
        at = min(offset, len(text))
        text = text[:at] + inserted + text[at + removed :]
        versions.append(text)
    schema._KNOWN_VALID.clear()
    model._BUILT_STEPS.clear()
    as_typed = [(shown(version), built(version, reuse=True)) for version in versions]
    for version, (diagnostics, workflow) in zip(versions, as_typed, strict=True):
        assert diagnostics == fresh(version)
        assert workflow == built(version, reuse=False)


def test_a_step_moved_to_other_lines_is_built_anew() -> None:
    model._BUILT_STEPS.clear()
    first = built(WORKFLOW, reuse=True)
    moved = WORKFLOW.replace("steps:\n  - id: build", "steps:\n\n  - id: build")
    second = built(moved, reuse=True)
    assert isinstance(first, tuple) and isinstance(second, tuple)
    assert first[0].steps[0].span.line + 1 == second[0].steps[0].span.line
    assert second == built(moved, reuse=False)


def test_an_unchanged_step_is_the_same_object() -> None:
    model._BUILT_STEPS.clear()
    first = built(WORKFLOW, reuse=True)
    changed = built(WORKFLOW.replace("echo done", "echo done!"), reuse=True)
    assert isinstance(first, tuple) and isinstance(changed, tuple)
    assert changed[0].steps[0] is first[0].steps[0]
    assert changed[0].finally_[0] is not first[0].finally_[0]
