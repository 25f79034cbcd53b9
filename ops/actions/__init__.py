"""The remediation actions: they change state, and say so in their `safety`, which a step can
only make stricter. Each module is one family; `ops.apps` registers them into the runbooks'
action registry, so a runbook step, the ops API and the console all run the same code."""
