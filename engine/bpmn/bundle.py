"""A deployment bundle: one BPMN document plus the DMN and form files it references."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from lxml import etree

from .safe_xml import parse_xml

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN_NS, "spiffworkflow": SPIFF_NS}
FORM_PROPERTIES = ("formJsonSchemaFilename", "formUiSchemaFilename")


@dataclass
class Bundle:
    bpmn_xml: str
    filename: str = "process.bpmn"
    dmn: dict[str, str] = field(default_factory=dict)
    forms: dict[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        canonical = json.dumps(
            {"bpmn": self.bpmn_xml, "dmn": self.dmn, "forms": self.forms}, sort_keys=True
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def task_properties(element: etree._Element) -> dict[str, str]:
    return {
        prop.get("name"): prop.get("value")
        for prop in element.iterfind("bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property", NS)
        if prop.get("name")
    }


def referenced_forms(root: etree._Element) -> set[str]:
    names = set()
    for task in root.iterfind(".//bpmn:userTask", NS):
        props = task_properties(task)
        names.update(props[p] for p in FORM_PROPERTIES if props.get(p))
    return names


def referenced_decisions(root: etree._Element) -> set[str]:
    return {
        (node.text or "").strip()
        for node in root.iterfind(".//bpmn:businessRuleTask/bpmn:extensionElements/spiffworkflow:calledDecisionId", NS)
        if (node.text or "").strip()
    }


def decision_ids(dmn_xml: str) -> set[str]:
    root = parse_xml(dmn_xml)
    return {el.get("id") for el in root if etree.QName(el).localname == "decision" and el.get("id")}
