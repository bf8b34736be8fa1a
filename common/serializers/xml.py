"""Django's xml format, loading exported secrets (see common/serializers/__init__.py)."""

from django.core.serializers import xml_serializer as base

from common.serializers import revealing

Serializer = base.Serializer
Deserializer = revealing(base.Deserializer)
