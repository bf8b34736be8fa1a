"""The apps are layers: each imports only the apps below it, never one above.

    integrations → connections → oauthclients → workspaces → accounts → audit → common

Every module of every app is parsed, imports inside functions included (an
import moved into a function to dodge a cycle is still a cycle). ``config``
wires everything together and may import anything; no app imports it.
"""

import ast
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["common", "audit", "accounts", "workspaces", "oauthclients", "connections", "integrations"]  # bottom first
RANK = {app: rank for rank, app in enumerate(LAYERS)}
NEVER_IMPORTED = {"config", "tests", "bench"}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the tree, at any depth.

    Relative imports stay inside their own package, so they are left out;
    ``importlib.import_module("…")`` with a literal name counts as an import.
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def upward_imports(app: str, source: str, filename: str) -> list[str]:
    problems = []
    for line, module in imported_modules(ast.parse(source, filename)):
        target = module.split(".")[0]
        if target in NEVER_IMPORTED or RANK.get(target, -1) > RANK[app]:
            problems.append(f"{filename}:{line} imports {module}")
    return problems


def modules_of(app: str) -> list[Path]:
    return sorted((ROOT / app).rglob("*.py"))


@pytest.mark.parametrize("app", LAYERS)
def test_an_app_imports_only_the_apps_below_it(app):
    modules = modules_of(app)
    assert modules, f"{app}/ has no modules"
    problems = []
    for path in modules:
        problems += upward_imports(app, path.read_text(), str(path.relative_to(ROOT)))
    assert problems == [], "\n".join(problems)


def test_every_app_of_the_project_has_a_layer():
    ours = {name.split(".")[0] for name in settings.INSTALLED_APPS if (ROOT / name.split(".")[0]).is_dir()}
    assert ours == set(LAYERS)


@pytest.mark.parametrize(
    "source",
    [
        "from connections.services import connection_disconnect",
        "import connections.services",
        "def delete():\n    from connections import services\n",
        "class A:\n    def f(self):\n        import importlib\n        importlib.import_module('connections.flow')\n",
        "def ready():\n    from config.celery_app import app\n",
    ],
)
def test_the_check_catches_an_import_from_above_wherever_it_hides(source):
    assert upward_imports("oauthclients", source, "oauthclients/example.py") != []


def test_the_check_lets_imports_from_below_and_from_outside_through():
    source = (
        "from django.db import models\nfrom common.errors import ServiceError\n"
        "from workspaces.models import Workspace\nfrom .models import OAuthClient\n"
    )
    assert upward_imports("oauthclients", source, "oauthclients/example.py") == []
