"""The script sandbox against a corpus of escape attempts, and its CPU-time and size limits.

Every attempt is run twice: uploaded in a process definition, where what can be seen in the code is
refused naming its element, and executed by the script engine processes use (ChangeflowScriptEngine
in a real SpiffWorkflow workflow), where everything is refused or stopped. A canary file the attempts
try to create and an environment variable they try to read prove that nothing reached the host.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from xml.sax.saxutils import escape, quoteattr

import pytest
from lxml import etree
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine import sandbox_limits
from engine.bpmn.parser import ChangeflowBpmnParser
from engine.business_time import add_business_days
from engine.config import PROJECT_ROOT, Settings
from engine.decisions import evaluate_decision
from engine.errors import WorkflowFailure
from engine.scripting import ChangeflowScriptEngine

from .client import NORMAL_CHANGE
from .test_timers import timer_jobs
from .test_workflow_failures import APPROVE_PATH, BEFORE_FIRST_USER_TASK, incident, with_script_on

PROCESSES = PROJECT_ROOT / "processes"
LIMITS = sandbox_limits.ScriptLimits(cpu_seconds=0.25, output_bytes=64 * 1024, max_length=100_000,
                                     memory_bytes=64 * 1024 ** 2)
CANARY_ENV = "CHANGEFLOW_SANDBOX_CANARY"
CPU = r"CPU-time limit"
SIZE = r"too large|limit is"


@dataclass(frozen=True)
class Attempt:
    name: str
    source: str           # {canary} is the path of a file the attempt must not create
    where: str = "script"  # script | condition | timer | dmn | parameter
    at_deploy: bool = True  # visible in the code: refused when the definition is uploaded
    stopped_by: str = ""    # a pattern the run-time failure must match (limits)
    cpu_seconds: float | None = None  # a CPU budget of its own, where another limit must stop it first


ATTEMPTS = [
    # imports and builtins that reach the host
    Attempt("import_os", "import os\nos.system('touch {canary}')"),
    Attempt("from_import", "from os import system\nsystem('touch {canary}')"),
    Attempt("dunder_import", "__import__('os').system('touch {canary}')"),
    Attempt("builtins_dict", "__builtins__['open']('{canary}', 'w')"),
    Attempt("open_write", "open('{canary}', 'w').write('escaped')"),
    Attempt("eval", "eval(\"__import__('os').system('touch {canary}')\")"),
    Attempt("exec", "exec(\"import os\")"),
    Attempt("compile", "code = compile('1', 'x', 'eval')"),
    Attempt("globals", "scope = globals()"),
    Attempt("vars", "scope = vars()"),
    Attempt("print_open", "print(open)"),
    # the class hierarchy and introspection
    Attempt("class_mro_subclasses", "classes = ().__class__.__mro__[1].__subclasses__()"),
    Attempt("class_base", "base = ''.__class__.__base__"),
    Attempt("getattr_dunder", "cls = getattr((), '__class__')"),
    Attempt("getattr_built_name", "cls = getattr((), '__cl' + 'ass__')"),
    Attempt("lambda_globals", "scope = (lambda: 0).__globals__"),
    Attempt("function_code", "def f():\n    pass\ncode = f.__code__"),
    Attempt("method_self", "module = json.dumps.__self__"),
    Attempt("class_definition", "class Evil:\n    pass"),
    # frames through generators and tracebacks
    Attempt("generator_frame", "g = (i for i in [1])\nframe = g.gi_frame.f_back"),
    Attempt("generator_code", "g = (i for i in [1])\ncode = g.gi_code"),
    Attempt("traceback_frame", "try:\n    1 / 0\nexcept Exception as e:\n    frame = e.__traceback__.tb_frame"),
    Attempt("sys_getframe", "frame = sys._getframe(0)"),
    # format-string tricks
    Attempt("fstring_dunder", "x = f'{().__class__.__mro__}'"),
    Attempt("str_format_attribute", "x = '{0.__class__.__mro__}'.format(())", at_deploy=False),
    Attempt("str_format_map", "x = '{a.__class__}'.format_map({'a': 1})", at_deploy=False),
    Attempt("str_format_unbound", "x = str.format('{0.__init__.__globals__}', 1)", at_deploy=False),
    Attempt("type_builtin", "t = type(())", at_deploy=False),
    # the other places expressions live
    Attempt("condition_subclasses", "().__class__.__bases__[0].__subclasses__()", where="condition"),
    Attempt("timer_import", "__import__('os').system('touch {canary}')", where="timer"),
    Attempt("dmn_mro", '"x".__class__.__mro__', where="dmn"),
    Attempt("dmn_huge_power", "10 ** 10 ** 10", where="dmn"),
    Attempt("parameter_open", "open('{canary}').read()", where="parameter"),
    # runaway work: stopped by the CPU-time budget
    Attempt("infinite_loop_constant", "while True:\n    pass"),
    Attempt("infinite_loop", "n = 0\nwhile n >= 0:\n    n += 1", at_deploy=False, stopped_by=CPU),
    Attempt("infinite_loop_catching", "n = 0\nwhile n >= 0:\n    try:\n        while n >= 0:\n            n += 1\n"
            "    except BaseException:\n        n += 1", at_deploy=False, stopped_by=CPU),
    Attempt("infinite_loop_finally", "n = 0\nwhile n >= 0:\n    try:\n        n += 1\n    finally:\n        continue",
            at_deploy=False, stopped_by=CPU),
    Attempt("nested_comprehension", "x = [a for a in range(10 ** 5) for b in range(10 ** 5)]",
            at_deploy=False, stopped_by=CPU),
    Attempt("condition_loop", "[a for a in range(10 ** 5) for b in range(10 ** 5)] == []", where="condition",
            at_deploy=False, stopped_by=CPU),
    Attempt("catastrophic_regex", "x = re.match('(a|aa)+$', 'a' * 40 + 'b')", at_deploy=False, stopped_by=CPU),
    Attempt("helper_loop", "x = business_days(10 ** 9)", at_deploy=False, stopped_by=CPU),
    Attempt("memory_hog", "keep = []\nwhile len(keep) >= 0:\n    keep.append(('x' * 100000).upper())",
            at_deploy=False, stopped_by="memory limit", cpu_seconds=30),  # touching 64 MB took 0.25 s on a slow host
    Attempt("recursion", "def f(n):\n    return f(n + 1)\nf(0)", at_deploy=False, stopped_by="recursion"),
    # huge values built in one step
    Attempt("huge_power_constant", "x = 10 ** 10 ** 10"),
    Attempt("huge_string_constant", "x = 'a' * 10 ** 10"),
    Attempt("huge_shift_constant", "x = 1 << 10 ** 10"),
    Attempt("huge_power", "n = 10 ** 5\nx = 10 ** (n * n)", at_deploy=False, stopped_by=SIZE),
    Attempt("huge_pow_builtin", "n = 10 ** 5\nx = pow(10, n * n)", at_deploy=False, stopped_by=SIZE),
    Attempt("huge_list", "x = [0] * 10 ** 9", at_deploy=False, stopped_by=SIZE),
    Attempt("huge_range", "x = list(range(10 ** 12))", at_deploy=False, stopped_by=SIZE),
    Attempt("huge_padding", "x = 'a'.ljust(10 ** 10)", at_deploy=False, stopped_by=SIZE),
    Attempt("huge_fstring_width", "n = 10 ** 10\nx = f'{1:>{n}}'", at_deploy=False, stopped_by=SIZE),
    Attempt("huge_printf_width", "x = '%*d' % (10 ** 10, 1)", at_deploy=False, stopped_by=SIZE),
    Attempt("huge_replace", "s = 'a' * 1000\nx = s.replace('a', s * 50)", at_deploy=False, stopped_by=SIZE),
    Attempt("huge_join", "s = 'a' * 1000\nx = s.join([s] * 50000)", at_deploy=False, stopped_by=SIZE),
    Attempt("list_doubling_slice", "l = [1]\nfor i in range(64):\n    l[len(l):] = l", at_deploy=False,
            stopped_by=SIZE),
    Attempt("list_doubling_star", "l = [1]\nfor i in range(64):\n    l = [*l, *l]", at_deploy=False,
            stopped_by=SIZE),
    Attempt("list_doubling_extend", "l = [1]\nfor i in range(64):\n    l.extend(l)", at_deploy=False,
            stopped_by=SIZE),
    Attempt("self_similar_str", "l = [0]\nfor i in range(64):\n    l = [l, l]\ns = str(l)", at_deploy=False,
            stopped_by=SIZE),
    Attempt("self_similar_exception", "l = [0]\nfor i in range(64):\n    l = [l, l]\nraise ValueError(l)",
            at_deploy=False, stopped_by="too large to show"),
    Attempt("sum_of_lists", "x = sum([[0] * 1000] * 1000, [])", at_deploy=False, stopped_by="adds numbers"),
    Attempt("json_indent", "x = json.dumps([1, 2], indent=10 ** 9)", at_deploy=False, stopped_by="16 characters"),
    # code left to run later, outside any budget: a suspended generator's finally, a lazy map
    Attempt("generator_finally", "def g():\n    try:\n        yield 1\n    finally:\n        while len([]) >= 0:\n"
            "            pass\nfor v in g():\n    break"),
    Attempt("lazy_code_left_in_data", "later = [map(lambda v: [a for a in range(10 ** 5) for b in range(10 ** 5)], [1])]",
            at_deploy=False, stopped_by="not data"),
    Attempt("lazy_code_returned", "map(lambda v: v, [1])", where="dmn", at_deploy=False, stopped_by="not data"),
    Attempt("output_too_large", "x = ['y' * 1000] * 100", at_deploy=False, stopped_by="output limit"),
    Attempt("expression_too_large", "['y' * 1000] * 100", where="condition", at_deploy=False,
            stopped_by="output limit"),
]
assert len({a.name for a in ATTEMPTS}) == len(ATTEMPTS)


@pytest.fixture(autouse=True)
def small_limits():
    """Small limits make runaway attempts fail fast; the previous limits come back afterwards."""
    before = sandbox_limits.current()
    sandbox_limits.configure(LIMITS)
    yield
    sandbox_limits.configure(before)


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    # The app configures the sandbox from its settings: the same small limits, through Settings.
    return Settings.from_env(database_url=database_url, redis_url=None, instance_dir=tmp_path / "instance",
                             script_cpu_seconds=LIMITS.cpu_seconds, script_output_bytes=LIMITS.output_bytes,
                             script_max_length=LIMITS.max_length, script_memory_mb=64)


@pytest.fixture
def canary(tmp_path, monkeypatch):
    secret = secrets.token_hex(16)
    monkeypatch.setenv(CANARY_ENV, secret)
    path = tmp_path / "canary"
    yield path, secret
    assert not path.exists(), "an attempt created the canary file"


def source_of(attempt: Attempt, path) -> str:
    return attempt.source.replace("{canary}", str(path))


# -- at deploy time ------------------------------------------------------------------------------

def upload_for(attempt: Attempt, source: str) -> tuple[dict, set[str]]:
    """The files to upload with the attempt placed where it says, and the element ids to blame."""
    bpmn = (PROCESSES / "normal_change.bpmn").read_text()
    if attempt.where == "script":
        return {"normal_change.bpmn": with_script_on(APPROVE_PATH, source, task_id="Task_Attempt")}, {"Task_Attempt"}
    if attempt.where == "condition":
        old = '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">decision == "approve"<'
        new = f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(source)}<'
        return {"normal_change.bpmn": _replace_once(bpmn, old, new)}, {"Flow_Approve"}
    if attempt.where == "timer":
        old = ">business_days(2)</bpmn:timeDate>"
        return {"normal_change.bpmn": _replace_once(bpmn, old, f">{escape(source)}</bpmn:timeDate>")}, \
            {"Event_AuthorizeOverdue"}
    if attempt.where == "parameter":
        old = 'value="&quot;assess&quot;"'
        return {"normal_change.bpmn": _replace_once(bpmn, old, f"value={quoteattr(source)}")}, {"Task_SetState_Assess"}
    dmn = (PROCESSES / "risk.dmn").read_text()
    old = '<text>"Access-control changes are security-sensitive."</text>'
    return {"risk.dmn": _replace_once(dmn, old, f"<text>{escape(source)}</text>")}, \
        {"Rule_AccessControl", "OutputEntry_AccessControl_2"}


def _replace_once(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("attempt", [a for a in ATTEMPTS if a.at_deploy], ids=lambda a: a.name)
def test_escape_visible_in_the_code_is_refused_at_deploy_naming_its_element(api, canary, attempt):
    path, secret = canary
    files, blamed = upload_for(attempt, source_of(attempt, path))
    response = api.post("/api/process-definitions", "paula", json={"files": files})
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert any(e["element_id"] in blamed and "sandbox" in e["message"] and e["line"] for e in errors), errors
    assert secret not in response.get_data(as_text=True)
    versions = api.get("/api/process-definitions/normal_change/versions", "paula").get_json()
    assert [v["version"] for v in versions] == [1]  # nothing was deployed


# -- at run time, in the engine processes use ----------------------------------------------------

def workflow_with_script(script: str) -> BpmnWorkflow:
    """start → scriptTask Task_Attempt → end, run by ChangeflowScriptEngine."""
    bpmn = "http://www.omg.org/spec/BPMN/20100524/MODEL"
    root = etree.fromstring(f"""<definitions xmlns="{bpmn}" id="Defs" targetNamespace="test">
      <process id="Attempt" isExecutable="true">
        <startEvent id="Event_Start"><outgoing>Flow_1</outgoing></startEvent>
        <scriptTask id="Task_Attempt" name="Attempt"><incoming>Flow_1</incoming><outgoing>Flow_2</outgoing>
          <script/></scriptTask>
        <endEvent id="Event_End"><incoming>Flow_2</incoming></endEvent>
        <sequenceFlow id="Flow_1" sourceRef="Event_Start" targetRef="Task_Attempt"/>
        <sequenceFlow id="Flow_2" sourceRef="Task_Attempt" targetRef="Event_End"/>
      </process></definitions>""")
    root.find(f".//{{{bpmn}}}script").text = script
    parser = ChangeflowBpmnParser()
    parser.add_bpmn_xml(root, filename="attempt.bpmn")
    return BpmnWorkflow(parser.get_spec("Attempt"), script_engine=ChangeflowScriptEngine())


def run_in_engine(attempt: Attempt, source: str) -> tuple[SpiffWorkflowException, dict]:
    workflow = workflow_with_script(source if attempt.where == "script" else "pass")
    [start] = workflow.get_tasks(spec_name="Event_Start")
    start.data["facts"] = {"impact": 3}
    with pytest.raises(SpiffWorkflowException) as failure:
        workflow.do_engine_steps()
        if attempt.where != "script":  # an expression, evaluated as a condition, timer or DMN cell is
            [task] = workflow.get_tasks(spec_name="Task_Attempt")
            workflow.script_engine.evaluate(task, source)
    return failure.value, workflow.get_tasks(spec_name="Task_Attempt")[0].data


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=lambda a: a.name)
def test_escape_is_refused_or_stopped_at_run_time_and_reaches_nothing(canary, attempt):
    path, secret = canary
    if attempt.cpu_seconds:
        sandbox_limits.configure(replace(LIMITS, cpu_seconds=attempt.cpu_seconds))
    error, data = run_in_engine(attempt, source_of(attempt, path))
    assert error.task_spec.bpmn_id == "Task_Attempt"  # the failure names the element
    message = str(error)
    if attempt.stopped_by:
        assert re.search(attempt.stopped_by, message), message
    for leak in (secret, "<class", "object at 0x", "/etc/passwd"):
        assert leak not in message and leak not in repr(data), message


def test_a_normal_script_reads_its_data_and_leaves_its_results():
    script = "\n".join([
        "owners = sorted(set(owners)) + ['cab']",
        "summary = f'{title!r}: {len(owners)} approvers, impact {facts[\"impact\"]:>2}'",
        "due = (datetime.datetime(2026, 12, 4, 10) + datetime.timedelta(days=2)).date().isoformat()",
        "ticket = re.search('[A-Z]+-[0-9]+', title).group(0)",
        "payload = json.loads(json.dumps({'ticket': ticket, 'score': math.ceil(2.1) * 10 ** 2}))",
        "padded = str(7).zfill(3) + '%-4s|' % 'ok' + ', '.join(o.upper() for o in owners)",
        "count = 0",
        "for owner in owners:",
        "    count += 1",
        "try:",
        "    x = 1 / 0",
        "except ZeroDivisionError:",
        "    handled = True",
        "del scratch",
    ])
    workflow = workflow_with_script(script)
    [start] = workflow.get_tasks(spec_name="Event_Start")
    start.data.update(title="Patch CHG-42 now", owners=["sam", "ivan", "sam"], facts={"impact": 3}, scratch=1)
    workflow.do_engine_steps()
    assert workflow.is_completed()
    data = workflow.data if workflow.data else workflow.get_tasks(spec_name="Event_End")[0].data
    assert data["owners"] == ["ivan", "sam", "cab"]
    assert data["summary"] == "'Patch CHG-42 now': 3 approvers, impact  3"
    assert data["due"] == "2026-12-06"
    assert data["payload"] == {"ticket": "CHG-42", "score": 300}
    assert data["padded"] == "007ok  |IVAN, SAM, CAB"
    assert (data["count"], data["handled"]) == (3, True)
    assert "scratch" not in data


def test_a_decision_evaluated_outside_a_process_is_stopped_the_same_way():
    """Intake preview, templates and evidence rules evaluate DMN without a workflow around it."""
    policy = (PROCESSES / "risk.dmn").read_text()
    runaway = _replace_once(policy, '<text>"Access-control changes are security-sensitive."</text>',
                            "<text>[a for a in range(10 ** 5) for b in range(10 ** 5)]</text>")
    facts = dict(category="access_control", change_type="normal", has_rollback_plan=True, impact=3,
                 max_criticality=3, recent_failures=0, rollback_tested=True, touches_blackout=False, urgency=3)
    version = SimpleNamespace(dmn={"risk.dmn": policy}, process_key="normal_change", version=1)
    assert "Access-control changes are security-sensitive." in evaluate_decision(
        version, "risk_assessment", facts)["risk_reason"]
    version.dmn = {"risk.dmn": runaway}
    with pytest.raises(WorkflowFailure) as failure:
        evaluate_decision(version, "risk_assessment", facts)
    assert re.search(CPU, failure.value.message), failure.value.message


def test_a_garbage_collection_during_an_evaluation_does_not_count_against_its_budget():
    """A collection runs in whichever thread allocates when one is due; a full one over a large heap
    took over a second and stopped the trivial decision that happened to be running."""
    import dataclasses
    import gc
    import time

    heap = [[n] for n in range(600_000)]  # noqa: F841 — what the collection walks
    started = time.thread_time()
    gc.collect()
    collecting = time.thread_time() - started
    tight = dataclasses.replace(LIMITS, cpu_seconds=collecting / 4)  # a quarter of one collection
    with sandbox_limits.cpu_budget(tight) as budget:
        gc.collect()
        budget.check()  # raises ScriptLimitError when the collection counted
    with pytest.raises(sandbox_limits.ScriptLimitError), sandbox_limits.cpu_budget(tight) as budget:
        deadline = time.thread_time() + collecting
        while time.thread_time() < deadline:  # the same CPU time spent by the evaluation itself
            pass
        budget.check()


# -- through the whole service: incidents, DMN and timers ----------------------------------------

@pytest.mark.parametrize("script, stopped_by", [
    ("n = 0\nwhile n >= 0:\n    n += 1", CPU),
    ("n = 10 ** 5\nresult = 10 ** (n * n)", SIZE),
    ("result = ['y' * 1000] * 100", "output limit"),
], ids=["infinite_loop", "huge_power", "output_too_large"])
def test_runaway_script_in_a_deployed_process_fails_as_an_incident_naming_it(api, script, stopped_by):
    response = api.post("/api/process-definitions", "paula", json={
        "files": {"normal_change.bpmn": with_script_on(BEFORE_FIRST_USER_TASK, script, name="Runaway")}})
    assert response.status_code == 201, response.get_json()
    response = api.post("/api/changes", "alice", json=NORMAL_CHANGE)
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["element_id"] == "Task_Broken"
    assert "Runaway" in body["message"] and re.search(stopped_by, body["message"]), body["message"]
    row = incident(api, body["incident_id"])
    assert (row.element_id, row.process_key) == ("Task_Broken", "normal_change")
    assert api.get("/api/changes", "alice").get_json()["items"] == []  # the command was rolled back


def test_decisions_and_timer_expressions_run_in_the_limited_sandbox(api):
    submitted_at = datetime.now(timezone.utc)
    change = api.submit(category="access_control")  # risk.dmn and priority.dmn, in the sandbox
    assert (change["state"], change["risk"]) == ("authorize", "moderate")
    assert change["priority"] in range(1, 6)
    [(status, due)] = timer_jobs(api, change["id"])  # timeDate business_days(2), in the sandbox
    assert status == "pending"
    assert abs(due - add_business_days(submitted_at, 2)) < timedelta(minutes=1)
