"""The registry of step handlers: every action of a plan has exactly one handler, made fresh for each run."""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import pytest

from xsoar_mt.engine.context import RunContext
from xsoar_mt.engine.steps import HANDLER_TYPES, handlers
from xsoar_mt.engine.steps.base import ServerStep
from xsoar_mt.plan import Action, Step


def test_every_action_has_exactly_one_handler() -> None:
    made = handlers()
    assert set(made) == set(Action)
    assert all(handler.action is action for action, handler in made.items())
    actions = [kind.action for kind in HANDLER_TYPES]
    assert sorted(actions) == sorted(Action)  # none twice, none missing


class SecondStop(ServerStep):
    action: ClassVar[Action] = Action.STOP

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        pass


def test_a_second_handler_for_an_action_is_refused_naming_both() -> None:
    with pytest.raises(ValueError, match="two handlers for stop: Stop and SecondStop"):
        handlers((*HANDLER_TYPES, SecondStop))


def test_an_action_without_a_handler_is_refused() -> None:
    without_validate = tuple(kind for kind in HANDLER_TYPES if kind.action is not Action.VALIDATE)
    with pytest.raises(ValueError, match="no handler for validate"):
        handlers(without_validate)


def test_each_run_gets_handlers_of_its_own() -> None:
    # the upload handler keeps the installers' sha256 it read: a run never sees another run's
    assert handlers()[Action.FETCH] is not handlers()[Action.FETCH]


class CutOff(ServerStep):
    action: ClassVar[Action] = Action.PURGE

    def on_server(self, run: RunContext, step: Step, server: str) -> None:
        from xsoar_mt.engine.model import StepFailed

        raise StepFailed(step, server, "stopped waiting (second interrupt)", interrupted=True)


def test_a_step_cut_off_by_the_second_interrupt_on_every_server_is_an_interruption_not_a_failure() -> None:
    from xsoar_mt.engine.model import StepFailed
    from xsoar_mt.skew import SkewVerdict

    step = Step("g/purge/a+1", "g", Action.PURGE, ("a", "b"), "true", "why", "6.11", SkewVerdict.OK)
    with pytest.raises(StepFailed) as failed:
        CutOff().run(SimpleNamespace(clock=lambda: 0.0), step)  # type: ignore[arg-type]  # only its clock is read
    assert failed.value.interrupted and set(failed.value.servers) == {"a", "b"}
