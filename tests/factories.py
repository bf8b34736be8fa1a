import itertools

import factory
from allauth.account.models import EmailAddress

from accounts.models import User
from audit.services import SYSTEM
from workspaces.models import Membership, Role, Workspace
from workspaces.services import api_key_create

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified(obj, create, extracted, **kwargs):
        if create:
            obj.save()
            EmailAddress.objects.create(user=obj, email=obj.email, verified=True, primary=True)


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"workspace-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


_key_numbers = itertools.count(1)


def make_api_key(workspace, scopes=("read", "write", "tokens"), name: str | None = None) -> str:
    """Create a key and return the raw secret for an Authorization header.

    Key names are unique among a workspace's active keys: without a name, each key gets its own.
    """
    name = name or f"test key {next(_key_numbers)}"
    _, raw = api_key_create(workspace=workspace, name=name, scopes=list(scopes), actor=SYSTEM)
    return raw
