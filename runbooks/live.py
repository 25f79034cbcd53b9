"""The runs card on the live incident page: it refreshes when a run or one of its steps changes
(started, a step done, waiting for or given an approval, finished)."""

from incidents.live import latest, register_part
from runbooks.models import RunbookRun, StepRun

register_part(
    "runs",
    lambda: {
        "runs": latest(RunbookRun.objects, "updated_at"),
        "steps": latest(StepRun.objects, "updated_at", incident="run__incident"),
    },
)
