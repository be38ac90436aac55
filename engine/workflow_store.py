"""Serializing workflow state without its spec, and without the history nothing runs on any more.

SpiffWorkflow's serializer embeds the whole process spec in every saved state. The spec belongs to
the deployed version and is already cached in memory (`engine.bpmn.specs`), so the stored state
holds only tasks and data and the spec is attached again on load.

SpiffWorkflow also keeps every task it ever ran, as one tree: each pass round a loop (reject →
rework → authorize again) hangs below the previous one, so the tree gets deeper with every pass.
Every command then loads, walks and saves all of it, and beyond ~1,000 levels SpiffWorkflow itself
breaks: `Task.is_descendant_of` and `find_ancestor` recurse once per level (RecursionError when a
boundary-event join runs), and its own `get_tasks` calls stop at depth 1,000, so `do_engine_steps`
stops seeing ready tasks. Hence *compaction*, on load and on save, once more than `COMPACT_AFTER`
finished tasks lie outside the part of the tree still in play:

- the *cut* is the nearest completed common ancestor of everything still in play: unfinished and
  failed tasks, the last task that ran (its data is projected onto the change), tasks that own a
  subprocess, and the split a waiting structured join (boundary events) looks up;
- the cut and everything below it stay exactly as they were; the cut's data, stored as a delta
  against its parent until now, is stored in full;
- everything else is finished: above the cut, or in branches that ended. It is replaced by one
  *stub* per BPMN element — a completed task of that element, with no data, stamped with the
  element's earliest completion among the tasks it replaces — chained between the root and the cut.
  The trace reads exactly that (`runtime.workflow_elements`: which elements completed, in order of
  first completion). SpiffWorkflow reads finished tasks outside the live part only when a parallel
  or inclusive join scans the whole tree: ancestors there are earlier passes of a loop, which it
  skips and stubs still are; finished side branches of earlier passes are gone, so they can no
  longer count as tokens that arrived in a later pass.

So the stored state stays bounded by the live part plus one stub per element however often an
instance loops. Only finished tasks are dropped; looking one up by id afterwards raises
TaskNotFoundException, as for any unknown id. States written before compaction existed load as they
are and are compacted on load; a state too small to compact is written exactly as before, and code
without compaction reads a compacted state like any other. `changeflow_history` in the state counts
what compaction dropped.
"""
from __future__ import annotations

import json
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

# Finished tasks outside the live part of the tree before they are folded into stubs. Ordinary
# changes (tens of tasks over their life) never reach it, so their states are what they always were;
# None turns compaction off.
COMPACT_AFTER: int | None = 200

HISTORY_KEY = "changeflow_history"
_IN_PLAY = TaskState.NOT_FINISHED_MASK | TaskState.ERROR


class SpeclessWorkflowConverter(BpmnWorkflowConverter):
    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        history = getattr(workflow, "changeflow_history", None)
        if history:
            dct[HISTORY_KEY] = dict(history)
        compact(dct, workflow.spec)
        return dct

    def from_dict(self, dct, spec=None, subprocess_specs=None):
        compact(dct, spec)
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        if HISTORY_KEY in dct:
            workflow.changeflow_history = dct.pop(HISTORY_KEY)
        return workflow


_config = dict(SPIFF_CONFIG)
_config[BpmnWorkflow] = SpeclessWorkflowConverter
SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_config))


def dump_state(workflow: BpmnWorkflow) -> str:
    return SERIALIZER.serialize_json(workflow)


def load_state(state: str, spec, subprocess_specs, script_engine) -> BpmnWorkflow:
    dct = json.loads(state)
    SERIALIZER.migrate(dct)
    workflow = SERIALIZER.from_dict(dct, spec=spec, subprocess_specs=subprocess_specs)
    workflow.script_engine = script_engine
    return workflow


def completed_tasks(state: str) -> tuple[int, int]:
    """(completed tasks the stored state holds, completed tasks over the instance's life)."""
    dct = json.loads(state)
    history = dct.get(HISTORY_KEY) or {}
    stubs = set(history.get("stubs", ()))
    held = sum(1 for tid, t in dct["tasks"].items() if t["state"] == TaskState.COMPLETED and tid not in stubs)
    return held, held + history.get("dropped_completed", 0)


# -- compaction ---------------------------------------------------------------------------------

def compact(dct: dict, spec, threshold: int | None = None) -> bool:
    """Fold the finished history of a serialized workflow (top level) into stubs; True if it did.

    Works on the serialized form so that an old row is compacted before SpiffWorkflow builds a task
    for each of its entries (and recurses along their depth)."""
    threshold = COMPACT_AFTER if threshold is None else threshold
    if threshold is None or spec is None:
        return False
    tasks, root = dct["tasks"], dct["root"]
    path = _cut_path(dct, spec)
    if path is None or len(path) < 2:
        return False
    cut = path[-1]
    keep = _subtree(tasks, cut)
    history = dict(dct.get(HISTORY_KEY) or {})
    old_stubs = set(history.get("stubs", ()))
    dropped = [tid for tid in tasks if tid not in keep and tid != root]
    new_drops = [tid for tid in dropped if tid not in old_stubs]
    if len(new_drops) < max(threshold, 1):
        return False

    first: dict[str, tuple[float, str]] = {}  # element (spec name) → (earliest completion, task id)
    for tid in dropped:
        entry = tasks[tid]
        if entry["state"] != TaskState.COMPLETED:
            continue  # the trace shows completed elements only; cancelled branches leave nothing
        task_spec = spec.task_specs.get(entry["task_spec"])
        if getattr(task_spec, "bpmn_id", None) is None:
            continue  # splits, joins, the start task: nothing a diagram shows
        seen = first.get(entry["task_spec"])
        if seen is None or entry["last_state_change"] < seen[0]:
            first[entry["task_spec"]] = (entry["last_state_change"], tid)
    chain = [tid for _, tid in sorted(first.values())]

    compacted = {root: {**tasks[root], "children": [(chain or [cut])[0]]}}
    parent = root
    for index, tid in enumerate(chain):
        below = chain[index + 1] if index + 1 < len(chain) else cut
        # an empty delta makes SpiffWorkflow take `data` as it is, not merge it into the parent's
        compacted[tid] = {**tasks[tid], "parent": parent, "children": [below], "internal_data": {},
                          "data": {}, "delta": {}}
        parent = tid
    compacted[cut] = {**tasks[cut], "parent": parent, "data": _data_at(tasks, path), "delta": {}}
    for tid, entry in tasks.items():
        if tid in keep and tid != cut:
            compacted[tid] = entry  # creation order: parents before children, as the loader needs
    dct["tasks"] = compacted
    dct[HISTORY_KEY] = {
        "stubs": chain,
        "dropped_tasks": history.get("dropped_tasks", 0) + len(new_drops),
        "dropped_completed": history.get("dropped_completed", 0)
        + sum(1 for tid in new_drops if tasks[tid]["state"] == TaskState.COMPLETED),
    }
    return True


def _cut_path(dct: dict, spec) -> list[str] | None:
    """Task ids from the root down to the cut, or None when nothing is in play (or the tree is odd)."""
    tasks = dct["tasks"]
    in_play = [tid for tid, t in tasks.items() if t["state"] & _IN_PLAY]
    for tid in list(in_play):
        split = getattr(spec.task_specs.get(tasks[tid]["task_spec"]), "split_task", None)
        if split and tasks[tid]["state"] & TaskState.NOT_FINISHED_MASK:
            ancestor = _ancestor_with_spec(tasks, tid, split)
            if ancestor is not None:
                in_play.append(ancestor)
    if dct.get("last_task") in tasks:
        in_play.append(dct["last_task"])
    in_play.extend(tid for tid in dct.get("subprocesses") or {} if tid in tasks)
    if not in_play:
        return None
    path = _path_to(tasks, in_play[0])
    if path is None or path[0] != dct["root"]:
        return None
    depth = {tid: index for index, tid in enumerate(path)}
    deepest = len(path) - 1
    for tid in in_play[1:]:
        node = tid
        while node is not None and node not in depth:
            node = tasks[node]["parent"] if node in tasks else None
        if node is None:
            return None
        deepest = min(deepest, depth[node])
    # A completed cut never inherits its parent's data again, so the stubs above it can hold none.
    while deepest > 0 and tasks[path[deepest]]["state"] != TaskState.COMPLETED:
        deepest -= 1
    return path[:deepest + 1]


def _path_to(tasks: dict, tid: str) -> list[str] | None:
    path, seen = [], set()
    while tid is not None:
        if tid not in tasks or tid in seen:
            return None
        seen.add(tid)
        path.append(tid)
        tid = tasks[tid]["parent"]
    path.reverse()
    return path


def _ancestor_with_spec(tasks: dict, tid: str, spec_name: str) -> str | None:
    tid = tasks[tid]["parent"]
    while tid is not None and tid in tasks:
        if tasks[tid]["task_spec"] == spec_name:
            return tid
        tid = tasks[tid]["parent"]
    return None


def _subtree(tasks: dict, top: str) -> set[str]:
    found, stack = set(), [top]
    while stack:
        tid = stack.pop()
        if tid in found or tid not in tasks:
            continue
        found.add(tid)
        stack.extend(tasks[tid]["children"])
    return found


def _data_at(tasks: dict, path: list[str]) -> dict:
    """The data of the last task on the path, applying the stored deltas as SpiffWorkflow's loader does."""
    data = dict(tasks[path[0]]["data"] or {})
    for tid in path[1:]:
        entry = tasks[tid]
        delta = entry.get("delta")
        if delta:
            data = {**data, **(delta.get("updates") or {})}
            for key in delta.get("deletions") or ():
                data.pop(key, None)
        else:
            data = dict(entry.get("data") or {})
    return data
