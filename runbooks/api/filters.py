import django_filters
from django.db.models import Q

from runbooks.choices import RunState
from runbooks.models import Runbook, RunbookRun
from runbooks.models.runbook import answering_like


class RunbookFilter(django_filters.FilterSet):
    alert = django_filters.CharFilter(method="filter_alert", label="Alert name it answers")
    service = django_filters.CharFilter(field_name="services__slug", distinct=True, label="Service slug")
    document = django_filters.CharFilter(field_name="document__key", label="Document key (file name)")
    search = django_filters.CharFilter(method="filter_search", label="Title, category or alert name")

    class Meta:
        model = Runbook
        fields = ["alert", "service", "document", "severity", "search"]

    def filter_alert(self, queryset, name, value):
        return queryset.answering(value) if value else queryset

    def filter_search(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(
            Q(title__icontains=value) | Q(category__icontains=value) | Q(pk__in=answering_like(value))
        )


class RunFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=RunState.choices)

    class Meta:
        model = RunbookRun
        fields = ["incident", "runbook", "state"]
