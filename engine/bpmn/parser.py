"""SpiffWorkflow's parser with Changeflow's service and business rule tasks.

A background operator's task does not run in the request. It is left STARTED (SpiffWorkflow's
"running elsewhere" state) and the command records it; a job then runs the operator on a worker
and completes the task there (`engine.runtime.resume_service_task`).

A business rule task reads the facts the requester does not type in (service criticality, blackout
windows, recent failures) as they are the moment the decision runs, not as they were at the last
user task: they are looked up here, so a task completion that reaches no decision pays nothing.
"""
from __future__ import annotations

from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.specs.defaults import BusinessRuleTask, ServiceTask


class ChangeflowServiceTask(ServiceTask):
    def _execute(self, task):
        engine = task.workflow.script_engine
        if engine.defers(self.operation_name):
            engine.defer_service_task(task)
            return None  # the task stays STARTED until a worker completes it
        return super()._execute(task)


class ChangeflowBusinessRuleTask(BusinessRuleTask):
    def _run_hook(self, task):
        task.workflow.script_engine.refresh_decision_facts(task)
        return super()._run_hook(task)


class ChangeflowBpmnParser(SpiffBpmnParser):
    OVERRIDE_PARSER_CLASSES = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (SpiffBpmnParser.OVERRIDE_PARSER_CLASSES[full_tag("serviceTask")][0],
                                  ChangeflowServiceTask),
        full_tag("businessRuleTask"): (SpiffBpmnParser.OVERRIDE_PARSER_CLASSES[full_tag("businessRuleTask")][0],
                                       ChangeflowBusinessRuleTask),
    }
