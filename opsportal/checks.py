from django.conf import settings
from django.core.checks import Warning, register


@register(deploy=True)
def metrics_guard_check(app_configs, **kwargs) -> list:
    if settings.METRICS_ENABLED and settings.METRICS_GUARD == "none":
        return [
            Warning(
                "/metrics is enabled without a guard: anyone who reaches the portal can read it.",
                hint="Set METRICS_GUARD=secret (with METRICS_GUARD_SECRET) or METRICS_GUARD=cidr "
                "(with METRICS_GUARD_ALLOWLIST).",
                id="opsportal.W001",
            )
        ]
    return []
