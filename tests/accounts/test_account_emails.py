"""Account e-mails name the product and its public address, not the host that served the request."""

import pytest
from django.core import mail

pytestmark = pytest.mark.django_db


def test_the_verification_email_speaks_of_tokenkeeper(client, settings):
    settings.PUBLIC_BASE_URL = "https://tokens.example.com"
    client.post(
        "/accounts/signup/",
        {"email": "grace@example.com", "password1": "correct-horse-battery-9", "password2": "correct-horse-battery-9"},
        HTTP_HOST="127.0.0.1",
    )
    [message] = mail.outbox
    assert message.subject.startswith("[Tokenkeeper] ")
    assert message.body.startswith("Hello from Tokenkeeper!")
    assert "https://tokens.example.com" in message.body
    assert "127.0.0.1" not in message.body.split("/accounts/confirm-email/")[0]


def test_the_sign_in_pages_say_log_in(client):
    page = client.get("/accounts/login/").content.decode()
    assert "<h1>Log in</h1>" in page and "Sign In" not in page
    assert '<label for="id_password">Password</label>' in page
    page = client.get("/accounts/signup/").content.decode()
    assert "<h1>Sign up</h1>" in page and "Sign Up" not in page
