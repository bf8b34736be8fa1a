"""Django's yaml format, loading exported secrets (see common/serializers/__init__.py)."""

from django.core.serializers import pyyaml as base

from common.serializers import revealing

Serializer = base.Serializer
Deserializer = revealing(base.Deserializer)
