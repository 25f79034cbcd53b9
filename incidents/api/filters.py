import django_filters
from django.db.models import Q

from incidents.choices import EventKind, Severity, Status
from incidents.models import Incident


def search_incidents(queryset, value: str):
    """Title, summary or reference (INC-42, or just 42)."""
    value = value.strip()
    if not value:
        return queryset
    condition = Q(title__icontains=value) | Q(summary__icontains=value)
    number = value.upper().removeprefix("INC-")
    if number.isdigit():
        condition |= Q(pk=int(number))
    return queryset.filter(condition)


class IncidentFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    service = django_filters.CharFilter(method="filter_service", label="Service slug")
    search = django_filters.CharFilter(method="filter_search", label="Text or reference")

    class Meta:
        model = Incident
        fields = ["status", "severity", "service", "search"]

    def filter_service(self, queryset, name, value):
        return queryset.filter(services__slug=value).distinct() if value else queryset

    def filter_search(self, queryset, name, value):
        return search_incidents(queryset, value)


class TimelineFilter(django_filters.FilterSet):
    kind = django_filters.MultipleChoiceFilter(choices=EventKind.choices)
    pinned = django_filters.BooleanFilter()
    include_deleted = django_filters.BooleanFilter(method="filter_deleted", label="Include deleted entries")

    def filter_deleted(self, queryset, name, value):
        return queryset

    def filter_queryset(self, queryset):
        if not self.form.cleaned_data.get("include_deleted"):
            queryset = queryset.visible()
        return super().filter_queryset(queryset)
