"""loaddata formats that turn exported ciphertext back into secrets.

``EncryptedTextField.value_to_string`` writes ``tokenkeeper-encrypted:<ciphertext>``
into exports. These deserializers (set in ``SERIALIZATION_MODULES`` for every
built-in format) decrypt such values after Django has read an object, so the
secrets load as secrets and are encrypted again on save. The field's
``to_python`` never decrypts: text typed into a form is never taken for
ciphertext, so no form can be used to have Tokenkeeper decrypt something.
"""

from django.core.serializers.base import DeserializedObject

from common.crypto import EncryptedTextField, reveal_exported


def _reveal(deserialized: DeserializedObject) -> DeserializedObject:
    instance = deserialized.object
    for field in instance._meta.concrete_fields:
        if isinstance(field, EncryptedTextField):
            setattr(instance, field.attname, reveal_exported(getattr(instance, field.attname)))
    return deserialized


def revealing(deserializer_class: type) -> type:
    """A subclass of one of Django's deserializers that decrypts exported secrets."""

    class Deserializer(deserializer_class):
        def _handle_object(self, node):
            handled = super()._handle_object(node)
            if isinstance(handled, DeserializedObject):  # the XML deserializer returns one object
                return _reveal(handled)
            return (_reveal(deserialized) for deserialized in handled)  # the others yield them

    Deserializer.__name__ = Deserializer.__qualname__ = deserializer_class.__name__
    return Deserializer
