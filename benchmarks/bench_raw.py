"""The raw SpiffWorkflow ceiling: the normal change process in one Python process, no web, no database.

Same BPMN and DMN files, same path as the HTTP load, and the full workflow state (spec included,
SpiffWorkflow's stock BpmnWorkflowSerializer with SPIFF_CONFIG) serialized and deserialized at
every user-task step, as a service that keeps state between requests must do at the least. Timers
(the approval SLAs, the wait for the planned start) are evaluated with the service's own timer helpers
and refreshed after every step, as the service's timer jobs do; the benchmark's windows are already
open, so the wait for the planned start fires at once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench_payloads import STEPS, process_start_data
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from engine.business_time import business_days, now_iso

PROCESS_KEY = "normal_change"


class NoServiceScriptEngine(PythonScriptEngine):
    """Service tasks do nothing but answer as the service would on the benchmark's happy path:
    no conflicts, the required evidence present. (The service's operators write to its database.)"""

    ANSWERS = {
        "detect_conflicts": '{"blocking": false, "blackout": false, "count": 0, "new": 0, "conflicts": []}',
        "check_evidence": '{"complete": true, "missing": [], "required": []}',
    }

    def __init__(self):
        # timer expressions use the helpers the service's script engine offers (engine.scripting.HELPERS)
        super().__init__(environment=TaskDataEnvironment({"business_days": business_days, "now_iso": now_iso}))

    def call_service(self, task, operation_name=None, **kwargs):
        return self.ANSWERS.get(operation_name, "{}")


@dataclass
class RawResult:
    changes: int
    completions: int
    seconds: float
    state_bytes: int  # size of the serialized state after the last step of one change

    @property
    def completions_per_second(self) -> float:
        return self.completions / self.seconds

    @property
    def changes_per_second(self) -> float:
        return self.changes / self.seconds


def load_specs(processes_dir: Path):
    parser = SpiffBpmnParser()
    parser.add_dmn_files([str(p) for p in sorted(processes_dir.glob("*.dmn"))])
    parser.add_bpmn_file(str(processes_dir / f"{PROCESS_KEY}.bpmn"))
    return parser.get_spec(PROCESS_KEY), parser.get_subprocess_specs(PROCESS_KEY)


def _ready_user_task(workflow: BpmnWorkflow, expected_name: str):
    ready = workflow.get_tasks(state=TaskState.READY, manual=True)
    if len(ready) != 1 or ready[0].task_spec.bpmn_name != expected_name:
        names = [t.task_spec.bpmn_name for t in ready]
        raise RuntimeError(f"expected one ready task '{expected_name}', found {names}")
    return ready[0]


def _advance(workflow: BpmnWorkflow) -> None:
    """Run engine steps, then fire the timers that are due and run on (the service's timer jobs)."""
    workflow.do_engine_steps()
    workflow.refresh_timers()
    workflow.do_engine_steps()


def run_change(index: int, specs, serializer, engine) -> tuple[int, str]:
    """Start one change and walk it to closed; returns (task completions, final state)."""
    spec, subprocess_specs = specs
    workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=engine)
    for task in workflow.get_tasks(state=TaskState.READY):
        task.data.update(process_start_data(index))
    _advance(workflow)
    state = serializer.serialize_json(workflow)
    for _actor, name, data in STEPS:
        workflow = serializer.deserialize_json(state)
        workflow.script_engine = engine
        task = _ready_user_task(workflow, name)
        task.set_data(**data)
        task.run()
        _advance(workflow)
        state = serializer.serialize_json(workflow)
    if not workflow.is_completed():
        raise RuntimeError(f"raw change {index} did not reach its end event")
    return len(STEPS), state


def run_ceiling(processes_dir: Path, changes: int) -> RawResult:
    specs = load_specs(processes_dir)
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
    engine = NoServiceScriptEngine()
    run_change(0, specs, serializer, engine)  # warm-up: imports, expression caches
    completions, state = 0, ""
    started = time.perf_counter()
    for index in range(1, changes + 1):
        done, state = run_change(index, specs, serializer, engine)
        completions += done
    return RawResult(changes, completions, time.perf_counter() - started, len(state))


if __name__ == "__main__":
    import sys

    changes = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    result = run_ceiling(Path(__file__).resolve().parent.parent / "processes", changes)
    print(f"{result.completions_per_second:.1f} task completions/s, state {result.state_bytes} bytes")
