"""The compensator: after a failed or interrupted main phase, the rollbacks of the steps
that succeeded, in reverse order of completion (saga); then the `finally` steps."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable

from wfx.expr import ExpressionError
from wfx.graph import Node, Section
from wfx.runtime import events as ev
from wfx.runtime.actions import render_text, rendering_failed, run_attempt
from wfx.runtime.contexts import RunContexts
from wfx.runtime.events import StepStatus
from wfx.runtime.resume import rerun_finally
from wfx.runtime.scheduler import Scheduler
from wfx.runtime.state import RunState
from wfx.runtime.steps import OutputChannel, StepRunner, flush


class Compensator:
    """Undoes the work of a run that did not succeed, and runs its `finally` steps."""

    def __init__(
        self, run: RunState, contexts: RunContexts, runner: StepRunner, scheduler: Scheduler
    ) -> None:
        self.run = run
        self.contexts = contexts
        self.runner = runner
        self.scheduler = scheduler

    async def wind_up(self) -> None:
        """After the main phase: compensate when the run failed or stopped, then run the
        `finally` steps (again, when a resumed run did main work again)."""
        run = self.run
        if run.failing or run.cancelled:
            await self.compensate()
        rerun_finally(run)
        await self.scheduler.phase(Section.FINALLY)

    async def compensate(self) -> None:
        """Roll back every succeeded step that has a rollback, the last one first."""
        await self.compensate_steps(self.run.steps(Section.MAIN))  # dynamic instances too

    async def compensate_steps(self, nodes: Iterable[Node]) -> int:
        """Roll back those of `nodes` that succeeded and have a rollback, the last one
        first; return how many rollbacks ran."""
        run = self.run
        owed = sorted(
            (n for n in nodes if n.is_step and self._owes_rollback(n)),
            key=lambda n: run.states[n.index].completed,
            reverse=True,
        )
        for node in owed:
            await self._rollback(node)
        return len(owed)

    def _owes_rollback(self, node: Node) -> bool:
        state = self.run.states[node.index]
        if node.id in self.run.rollbacks_done:
            return False
        return node.step.rollback is not None and state.status is StepStatus.SUCCESS

    async def _rollback(self, node: Node) -> None:
        run = self.run
        rollback = node.step.rollback
        settings = node.settings
        assert rollback is not None and settings is not None
        run.emit(ev.RollbackStarted(run.run_id, run.now(), node.id))
        started = time.monotonic()
        try:
            attempts = run.states[node.index].attempts
            contexts = self.contexts.step(node, attempts, self.contexts.ending_status())
            setup = self.runner.setup(node, 0, contexts)
            timeout = rollback.timeout.value if rollback.timeout else setup.timeout
            setup = dataclasses.replace(
                setup,
                timeout=timeout,
                on_output=OutputChannel(run, node.id, rollback=True),
                shell=str(rollback.shell.value) if rollback.shell else setup.shell,
                env={**setup.env, **{k: render_text(t, contexts) for k, t in rollback.env.items()}},
            )
            try:
                result = await run_attempt(
                    rollback, setup, self.runner.executors.of_action(node, rollback)
                )
            finally:
                flush(setup)
        except ExpressionError as exc:
            result = rendering_failed(exc, "the rollback")
        ok = result.status is StepStatus.SUCCESS
        status = StepStatus.ROLLED_BACK if ok else StepStatus.ROLLBACK_FAILED
        state = run.states[node.index]
        state.status = status
        run.steps_context[node.id]["status"] = status.value
        reason = None if ok else run.secrets.mask(result.reason or "")
        duration = time.monotonic() - started
        run.emit(ev.RollbackFinished(run.run_id, run.now(), node.id, status, duration, reason))
