"""Validation of a bundle before deployment: every problem found, each naming its element and line.

SpiffWorkflow's parser stops at the first error, so the checks a process owner most often trips over
(lanes, forms, operators, sandboxed scripts, decisions) run first over the XML and are all reported;
the engine's own parser runs last, on a document that passed them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.spiff.parser.process import VALIDATOR

from ..roles import ROLES, role_from_lane
from ..scripting import check_script
from .bundle import BPMN_NS, NS, Bundle, decision_ids, task_properties
from .safe_xml import XmlRejected, parse_xml

MAX_XSD_PROBLEMS = 25


@dataclass
class ValidationResult:
    process_key: str | None = None
    process_name: str = ""
    problems: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, element_id: str | None, line: int | None, message: str, file: str | None = None):
        problem = {"element_id": element_id, "line": line, "message": message}
        if file:
            problem["file"] = file
        self.problems.append(problem)


def _local(element) -> str:
    return etree.QName(element).localname


def _nearest_id(root: etree._Element, line: int | None) -> str | None:
    if not line:
        return None
    best = None
    for element in root.iter():
        if not isinstance(element.tag, str) or element.sourceline is None:
            continue
        if element.sourceline > line:
            break
        if element.get("id"):
            best = element.get("id")
    return best


def validate_bundle(bundle: Bundle, *, spec_builder=None) -> ValidationResult:
    result = ValidationResult()
    try:
        root = parse_xml(bundle.bpmn_xml)
    except XmlRejected as exc:
        result.add(None, exc.line, exc.message, bundle.filename)
        return result
    if _local(root) != "definitions" or etree.QName(root).namespace != BPMN_NS:
        result.add(root.get("id"), root.sourceline, "the document is not a BPMN 2.0 <definitions> element")
        return result

    decisions = _check_dmn(bundle, result)
    _check_schema(root, result, bundle.filename)
    process = _executable_process(root, result)
    if process is None or not result.ok:
        return result
    result.process_key = process.get("id")
    result.process_name = process.get("name") or process.get("id")
    _check_process(process, bundle, decisions, result)
    if result.ok and spec_builder is not None:
        _check_with_engine(bundle, result, spec_builder)
    return result


def _check_dmn(bundle: Bundle, result: ValidationResult) -> set[str]:
    found: set[str] = set()
    for name, xml in bundle.dmn.items():
        try:
            found |= decision_ids(xml)
            check_dmn_expressions(parse_xml(xml), result, name)
        except XmlRejected as exc:
            result.add(None, exc.line, exc.message, name)
    return found


def check_dmn_expressions(root, result: ValidationResult, filename: str) -> None:
    """Every DMN cell is evaluated by the sandbox; refuse at deploy what it would refuse at run time."""
    for element in root.iter():
        if not isinstance(element.tag, str) or _local(element) != "text":
            continue
        cell = element.getparent()
        text = (element.text or "").strip()
        if not text or text == "-" or _local(cell) not in ("inputExpression", "inputEntry", "outputEntry"):
            continue
        problem = check_script(text, expression=True)
        # An input entry may be a unary test ("< 3"): the engine puts the input on its left.
        if problem and _local(cell) == "inputEntry" and check_script(f"dmninput {text}", expression=True) is None:
            problem = None
        if problem:
            owner = cell.get("id") or cell.getparent().get("id")
            result.add(owner, element.sourceline, f"DMN expression is refused by the script sandbox: {problem}",
                       filename)


def _check_schema(root, result: ValidationResult, filename: str) -> None:
    schema = VALIDATOR.validator
    VALIDATOR.preprocess(root)
    try:
        if schema.validate(root):
            return
    except etree.LxmlError as exc:
        result.add(None, None, f"BPMN schema validation failed: {exc}", filename)
        return
    for error in list(schema.error_log)[:MAX_XSD_PROBLEMS]:
        result.add(_nearest_id(root, error.line), error.line, f"BPMN schema: {error.message}", filename)


def _executable_process(root, result: ValidationResult):
    processes = root.findall("bpmn:process", NS)
    if not processes:
        result.add(root.get("id"), root.sourceline, "the document contains no <process>")
        return None
    executable = [p for p in processes if p.get("isExecutable") == "true"]
    if not executable:
        for process in processes:
            result.add(process.get("id"), process.sourceline,
                       "process is not executable (set isExecutable=\"true\" on the process to deploy it)")
        return None
    if len(executable) > 1:
        for process in executable[1:]:
            result.add(process.get("id"), process.sourceline,
                       "only one executable process per file can be deployed; mark the others isExecutable=\"false\"")
        return None
    return executable[0]


def _lanes_by_node(process) -> dict[str, etree._Element]:
    lanes = {}
    for lane in process.iterfind(".//bpmn:lane", NS):
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            lanes[(ref.text or "").strip()] = lane
    return lanes


def _check_process(process, bundle: Bundle, decisions: set[str], result: ValidationResult) -> None:
    from ..operators import OPERATORS

    lanes = _lanes_by_node(process)
    for element in process.iter():
        if not isinstance(element.tag, str):
            continue
        kind = _local(element)
        element_id, line = element.get("id"), element.sourceline
        props = task_properties(element) if kind.endswith("Task") else {}
        if kind == "userTask":
            _check_user_task(element, props, lanes, bundle, result)
        elif kind == "serviceTask":
            operator = element.find("bpmn:extensionElements/spiffworkflow:serviceTaskOperator", NS)
            if operator is None:
                result.add(element_id, line, "service task names no operator (spiffworkflow:serviceTaskOperator)")
            elif operator.get("id") not in OPERATORS:
                result.add(element_id, line, f"unknown service task operator '{operator.get('id')}'; "
                           f"known operators: {', '.join(sorted(OPERATORS))}")
            else:
                for param in operator.iterfind(".//spiffworkflow:parameter", NS):
                    _check_code(param.get("value") or "None", True, element_id, line, result,
                                f"parameter '{param.get('id')}'")
        elif kind == "scriptTask":
            script = element.find("bpmn:script", NS)
            _check_code(script.text if script is not None else "", False, element_id, line, result, "script")
        elif kind == "businessRuleTask":
            ref = element.find("bpmn:extensionElements/spiffworkflow:calledDecisionId", NS)
            decision = (ref.text or "").strip() if ref is not None else ""
            if not decision:
                result.add(element_id, line, "business rule task names no decision (spiffworkflow:calledDecisionId)")
            elif decision not in decisions:
                result.add(element_id, line, f"decision '{decision}' is not in any deployed DMN file")
        elif kind in ("conditionExpression", "completionCondition", "loopCardinality"):
            owner = element.getparent()
            if kind != "conditionExpression":
                owner = owner.getparent()  # the task that carries the loop characteristics
            _check_code(element.text or "True", True, owner.get("id"), line, result,
                        "condition" if kind == "conditionExpression" else kind)
        elif kind in ("timeDate", "timeDuration", "timeCycle"):
            owner = element.getparent().getparent()
            _check_code(element.text or "", True, owner.get("id"), line, result, "timer expression")
        for hook in ("preScript", "postScript"):
            node = element.find(f"bpmn:extensionElements/spiffworkflow:{hook}", NS)
            if node is not None and (node.text or "").strip():
                _check_code(node.text, False, element_id, line, result, hook)


def _check_code(source: str, expression: bool, element_id, line, result: ValidationResult, what: str):
    problem = check_script(source.strip(), expression=expression)
    if problem:
        result.add(element_id, line, f"{what} is refused by the script sandbox: {problem}")


def _check_user_task(element, props, lanes, bundle: Bundle, result: ValidationResult) -> None:
    element_id, line = element.get("id"), element.sourceline
    lane = lanes.get(element_id)
    if lane is None:
        result.add(element_id, line, "user task is not in a lane; the lane names the role that works on it")
    elif role_from_lane(lane.get("name")) is None:
        result.add(element_id, line, f"lane '{lane.get('name')}' names no known role "
                   f"(roles: {', '.join(ROLES)})")
    form = props.get("formJsonSchemaFilename")
    if not form:
        result.add(element_id, line, "user task has no form (spiffworkflow property formJsonSchemaFilename)")
    for prop in ("formJsonSchemaFilename", "formUiSchemaFilename"):
        name = props.get(prop)
        if not name:
            continue
        if name not in bundle.forms:
            result.add(element_id, line, f"{prop} '{name}' is not among the deployed forms")
            continue
        try:
            document = json.loads(bundle.forms[name])
            if prop == "formJsonSchemaFilename":
                Draft202012Validator.check_schema(document)
        except (ValueError, SchemaError) as exc:
            result.add(element_id, line, f"form '{name}' is not a valid JSON Schema: {str(exc).splitlines()[0]}")


def _check_with_engine(bundle: Bundle, result: ValidationResult, spec_builder) -> None:
    try:
        spec_builder(bundle, result.process_key)
    except ValidationException as exc:
        result.add(getattr(exc, "id", None) or None, getattr(exc, "line_number", None) or None,
                   str(exc).splitlines()[0], bundle.filename)
    except Exception as exc:  # the engine's parser has no single error type for odd models
        result.add(None, None, f"the workflow engine could not read the process: {type(exc).__name__}: {exc}",
                   bundle.filename)
