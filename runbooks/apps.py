from django.apps import AppConfig


class RunbooksConfig(AppConfig):
    name = "runbooks"

    def ready(self) -> None:
        from opsportal import inbox
        from runbooks import (
            first_look,  # noqa: F401 - answers first_look_requested
            live,  # noqa: F401 - adds the runs card to the live incident page
        )
        from runbooks.inbox import waiting_steps
        from runbooks.views import drafts  # noqa: F401 - adds the runbooks used to a review

        inbox.register(waiting_steps)
