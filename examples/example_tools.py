"""Python steps for the example workflows (`uses: python:example_tools:FUNCTION`).

Each function receives the step's `with` mapping as keyword arguments and returns a
mapping that becomes the step's outputs. They touch nothing but files under the
`workspace` directory they are given.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import anyio


def transform_orders(workspace: str, source: str) -> dict[str, str | int]:
    """Turn the extracted orders CSV into JSON records with amounts in cents."""
    rows = list(csv.DictReader(Path(source).read_text(encoding="utf-8").splitlines()))
    cents = [_cents(row["amount"]) for row in rows]
    records = [
        {"id": int(row["id"]), "customer": row["customer"].title(), "cents": amount}
        for row, amount in zip(rows, cents, strict=True)
    ]
    target = Path(workspace) / "transformed" / f"{Path(source).stem}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    total = sum(cents)
    return {"file": str(target), "rows": len(records), "total": f"{total / 100:.2f}"}


def _cents(amount: str) -> int:
    units, _, fraction = amount.partition(".")
    return int(units) * 100 + int((fraction + "00")[:2])


async def health_check(workspace: str, target: str, probes: int = 3) -> dict[str, str]:
    """Probe the `target` deployment a few times (simulated: no network) and write a report."""
    deployed = Path(workspace) / f"{target}.version"
    results = []
    for probe in range(1, int(probes) + 1):
        await anyio.sleep(0.02)
        results.append(f"probe {probe}: {'ok' if deployed.exists() else 'no deployment'}")
    healthy = all(line.endswith("ok") for line in results)
    report = Path(workspace) / f"health-{target}.txt"
    report.write_text("\n".join(results) + "\n", encoding="utf-8")
    return {"healthy": "true" if healthy else "false", "report": str(report)}
