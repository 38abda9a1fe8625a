"""The wait before a retry: the plan's schedule, with the policy's jitter applied."""

from __future__ import annotations

import random

from wfx.graph import RetrySchedule


def wait_before(schedule: RetrySchedule, failed_attempt: int, rng: random.Random) -> float:
    """Seconds to wait after attempt `failed_attempt` (1-based) failed.

    The base is the schedule the plan shows; jitter `j` lengthens it at random by up to
    `j` times itself, uniformly over `[base, base * (1 + j)]` (never shorter than the plan
    says), so retries of many steps do not stampede.
    """
    base = schedule.delays[failed_attempt - 1]
    if not schedule.jitter:
        return base
    return base * (1 + rng.uniform(0.0, schedule.jitter))
