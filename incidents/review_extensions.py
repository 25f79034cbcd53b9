"""What apps built on incidents add to a review's action-item panel, without incidents importing
them: each provider takes the incident and returns template context (runbooks adds the runbooks
run for it, so an action item can open a runbook draft)."""

from collections.abc import Callable

ItemContext = Callable[[object], dict]

_item_context: list[ItemContext] = []


def add_item_context(provider: ItemContext) -> ItemContext:
    """Registers a provider (usable as a decorator); registering it twice has no effect."""
    if provider not in _item_context:
        _item_context.append(provider)
    return provider


def item_context(incident) -> dict:
    context: dict = {}
    for provider in _item_context:
        context.update(provider(incident))
    return context
