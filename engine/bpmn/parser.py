"""SpiffWorkflow's parser with Changeflow's service task: one whose operator may run on a worker.

A background operator's task does not run in the request. It is left STARTED (SpiffWorkflow's
"running elsewhere" state) and the command records it; a job then runs the operator on a worker
and completes the task there (`engine.runtime.resume_service_task`).
"""
from __future__ import annotations

from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.specs.defaults import ServiceTask


class ChangeflowServiceTask(ServiceTask):
    def _execute(self, task):
        engine = task.workflow.script_engine
        if engine.defers(self.operation_name):
            engine.defer_service_task(task)
            return None  # the task stays STARTED until a worker completes it
        return super()._execute(task)


class ChangeflowBpmnParser(SpiffBpmnParser):
    OVERRIDE_PARSER_CLASSES = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (SpiffBpmnParser.OVERRIDE_PARSER_CLASSES[full_tag("serviceTask")][0],
                                  ChangeflowServiceTask),
    }
