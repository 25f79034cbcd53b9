"""Signals higher apps listen to, so runbooks never imports them.

`step_executed` is sent in the worker after a step's action ran and its outcome was masked,
before the outcome is stored: ops writes the audit record of change and dangerous steps from it.
Receivers are called robustly: a failing receiver is logged and never fails the step.
"""

from django.dispatch import Signal

# sender: the StepRun class; step_run: the claimed StepRun (step, run loaded); outcome: execution.Outcome
step_executed = Signal()
