import django_filters

from .models import Connection, Status


class ConnectionFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    oauth_client = django_filters.UUIDFilter(field_name="oauth_client_id")

    class Meta:
        model = Connection
        fields = ["status", "oauth_client"]
