"""Django's python format, loading exported secrets (see common/serializers/__init__.py)."""

from django.core.serializers import python as base

from common.serializers import revealing

Serializer = base.Serializer
Deserializer = revealing(base.Deserializer)
