from django.apps import AppConfig


class RunbooksConfig(AppConfig):
    name = "runbooks"

    def ready(self) -> None:
        from incidents.alerting.paging import register_approval
        from opsportal import inbox
        from runbooks import (
            first_look,  # noqa: F401 - answers first_look_requested
            live,  # noqa: F401 - adds the runs card to the live incident page
        )
        from runbooks.approval_pages import SOURCE
        from runbooks.inbox import waiting_steps
        from runbooks.models import StepRun
        from runbooks.views import drafts  # noqa: F401 - adds the runbooks used to a review

        inbox.register(waiting_steps)
        register_approval(SOURCE, StepRun.awaits_approval)
