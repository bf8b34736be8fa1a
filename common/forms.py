from django import forms


def add_service_error(form: forms.Form, error) -> None:
    """Show a ServiceError on the fields it names, or above the form."""
    if not error.errors:
        form.add_error(None, error.message)
    for field, messages in error.errors.items():
        for message in messages:
            form.add_error(field if field in form.fields else None, message)
