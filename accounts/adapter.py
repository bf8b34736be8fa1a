"""allauth's account adapter: its e-mails speak of Tokenkeeper.

Without ``django.contrib.sites``, allauth names the site after the host that
served the request ("Hello from 127.0.0.1:8000!") and builds its links on
that host. Every account e-mail (verification, password reset, security
notices) gets the product's name, and its links the public address
(``PUBLIC_BASE_URL``), as invitation e-mails do.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings

PRODUCT_NAME = "Tokenkeeper"


@dataclass(frozen=True)
class ProductSite:
    """What allauth's templates read from ``current_site``."""

    name: str
    domain: str
    url: str


def product_site() -> ProductSite:
    url = settings.PUBLIC_BASE_URL
    return ProductSite(name=PRODUCT_NAME, domain=urlsplit(url).netloc or url, url=url)


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        super().send_mail(template_prefix, email, {**context, "current_site": product_site()})

    def get_email_confirmation_url(self, request, emailconfirmation) -> str:
        return _public(super().get_email_confirmation_url(request, emailconfirmation))

    def get_reset_password_from_key_url(self, key: str) -> str:
        return _public(super().get_reset_password_from_key_url(key))


def _public(url: str) -> str:
    """The same path and query on PUBLIC_BASE_URL."""
    base, link = urlsplit(settings.PUBLIC_BASE_URL), urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + link.path, link.query, ""))
