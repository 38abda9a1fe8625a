"""Cold start: importing the schema stage is cheap, and validation reuses one validator.

How fast a warm validation is: `python bench/run.py schema_warm`.
"""

from __future__ import annotations

import subprocess
import sys

from wfx import schema as wfx_schema
from wfx.source import loads

TEN_STEPS = "wfx: 1\nsteps:\n" + "".join(
    f"  - id: s{n}\n    run: echo {n}\n    timeout: 5s\n    retries: {{max: 2, delay: 100ms}}\n"
    for n in range(10)
)


def test_importing_the_schema_stage_does_not_import_jsonschema() -> None:
    probe = "import sys, wfx.schema; print('jsonschema' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_the_validator_is_built_once() -> None:
    wfx_schema.validate(loads(TEN_STEPS, "t.yaml"))
    first = wfx_schema._validator()
    wfx_schema.validate(loads(TEN_STEPS, "t.yaml"))
    assert wfx_schema._validator() is first


def test_a_warm_ten_step_validation_finds_nothing() -> None:
    # its speed against a plain jsonschema validator: `python bench/run.py schema_warm`
    document = loads(TEN_STEPS, "t.yaml")
    assert wfx_schema.validate(document) == []
    assert wfx_schema.validate(document) == []
