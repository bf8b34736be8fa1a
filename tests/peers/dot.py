"""Run an independent django-oauth-toolkit (DOT 3.x) authorization server.

The server is the small Django project in ``dot_server/`` and runs in a
*separate process* (its own settings, its own SQLite database in a temp
dir), so it never shares state with Tokenkeeper's Django::

    with DjangoOAuthToolkitServer(redirect_uri="http://127.0.0.1:8000/cb") as dot:
        dot.authorization_url   # http://127.0.0.1:PORT/o/authorize/
        dot.token_url           # http://127.0.0.1:PORT/o/token/
        dot.userinfo_url        # http://127.0.0.1:PORT/api/me
        dot.client_id, dot.client_secret, dot.username, dot.password

Configuration of the peer: confidential client, authorization-code grant,
PKCE required, refresh-token rotation on, scopes ``read write``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["DjangoOAuthToolkitServer", "SERVE_SCRIPT"]

SERVE_SCRIPT = Path(__file__).resolve().parent / "dot_server" / "serve.py"


def _template_db_path(python: str) -> str | None:
    """Where a migrated empty database is cached between starts."""
    try:
        from importlib.metadata import version

        key = "|".join(
            [
                python,
                version("django"),
                version("django-oauth-toolkit"),
                str(SERVE_SCRIPT.with_name("settings.py").stat().st_mtime_ns),
            ]
        )
    except Exception:
        return None
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"tokenkeeper-dot-peer-{digest}.sqlite3")


class DjangoOAuthToolkitServer:
    """A django-oauth-toolkit authorization server in a child process."""

    def __init__(
        self,
        *,
        redirect_uri: str | Iterable[str] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        username: str = "alice",
        password: str = "alice-password-1",  # noqa: S107 - throwaway test user
        email: str = "alice@example.com",
        access_token_lifetime: int = 3600,
        refresh_token_lifetime: int | None = None,
        refresh_token_grace_period: int = 0,
        refresh_token_reuse_protection: bool = False,
        pkce_required: bool = True,
        code_lifetime: int = 60,
        startup_timeout: float = 60.0,
        python: str | None = None,
        cache_template_db: bool = True,
        keep_files: bool = False,
    ) -> None:
        self.redirect_uri = redirect_uri
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.email = email
        self.access_token_lifetime = access_token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.refresh_token_grace_period = refresh_token_grace_period
        self.refresh_token_reuse_protection = refresh_token_reuse_protection
        self.pkce_required = pkce_required
        self.code_lifetime = code_lifetime
        self.startup_timeout = startup_timeout
        self.python = python or sys.executable
        self.cache_template_db = cache_template_db
        self.keep_files = keep_files

        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.workdir: str | None = None
        self.db_path: str | None = None
        self.log_path: str | None = None
        self._log_fh = None
        self._control_token = secrets.token_urlsafe(24)

    # ------------------------------------------------------------------ urls
    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("DjangoOAuthToolkitServer is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def authorization_url(self) -> str:
        return f"{self.base_url}/o/authorize/"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/o/token/"

    @property
    def revocation_url(self) -> str:
        return f"{self.base_url}/o/revoke_token/"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/o/introspect/"

    @property
    def userinfo_url(self) -> str:
        return f"{self.base_url}/api/me"

    @property
    def login_url(self) -> str:
        return f"{self.base_url}/accounts/login/"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> DjangoOAuthToolkitServer:
        if self.process is not None:
            return self
        self.workdir = tempfile.mkdtemp(prefix="dot-peer-")
        self.db_path = os.path.join(self.workdir, "dot.sqlite3")
        self.log_path = os.path.join(self.workdir, "server.log")
        port_file = os.path.join(self.workdir, "port")

        env = {k: v for k, v in os.environ.items() if not k.startswith("DOT_PEER_")}
        env.pop("DJANGO_SETTINGS_MODULE", None)  # serve.py forces its own anyway
        env.pop("DJANGO_CONFIGURATION", None)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "DOT_PEER_CONTROL_TOKEN": self._control_token,
                "DOT_PEER_ACCESS_TOKEN_EXPIRE_SECONDS": str(int(self.access_token_lifetime)),
                "DOT_PEER_REFRESH_TOKEN_GRACE_PERIOD_SECONDS": str(int(self.refresh_token_grace_period)),
                "DOT_PEER_REFRESH_TOKEN_REUSE_PROTECTION": "1" if self.refresh_token_reuse_protection else "0",
                "DOT_PEER_PKCE_REQUIRED": "1" if self.pkce_required else "0",
                "DOT_PEER_AUTHORIZATION_CODE_EXPIRE_SECONDS": str(int(self.code_lifetime)),
                "DOT_PEER_SECRET_KEY": secrets.token_urlsafe(40),
            }
        )
        if self.refresh_token_lifetime is not None:
            env["DOT_PEER_REFRESH_TOKEN_EXPIRE_SECONDS"] = str(int(self.refresh_token_lifetime))

        cmd = [
            self.python,
            str(SERVE_SCRIPT),
            "--port", "0",
            "--port-file", port_file,
            "--db", self.db_path,
            "--user", self.username,
            "--password", self.password,
            "--email", self.email,
        ]  # fmt: skip
        template = _template_db_path(self.python) if self.cache_template_db else None
        if template:
            cmd += ["--template-db", template]

        self._log_fh = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the child
        self.process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
        )
        try:
            self._wait_ready(port_file)
            if self.redirect_uri is not None:
                self.client_id, self.client_secret = self.setup_app(
                    self.redirect_uri, client_id=self.client_id, client_secret=self.client_secret
                )
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, port_file: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while self.port is None:
            if self.process.poll() is not None:
                raise RuntimeError(f"DOT peer exited with {self.process.returncode}:\n{self.read_log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"DOT peer did not bind a port in time:\n{self.read_log()}")
            try:
                with open(port_file) as fh:
                    self.port = int(fh.read().strip())
            except (FileNotFoundError, ValueError):
                time.sleep(0.05)
        while True:
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"DOT peer exited with {self.process.returncode}:\n{self.read_log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"DOT peer not ready in time:\n{self.read_log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        self.port = None
        if self.workdir and not self.keep_files:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> DjangoOAuthToolkitServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def read_log(self) -> str:
        """The child's combined stdout/stderr (request log, tracebacks)."""
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")

    # ------------------------------------------------------------------ control
    def _control(self, path: str, payload: dict | None = None) -> dict:
        req = urllib.request.Request(
            f"{self.base_url}/_peer/{path}",
            data=json.dumps(payload or {}).encode(),
            headers={"Content-Type": "application/json", "X-Peer-Control": self._control_token},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"DOT peer control {path} failed: {exc.code} {exc.read()!r}\n{self.read_log()}") from exc

    def setup_app(
        self,
        redirect_uri: str | Iterable[str],
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        name: str = "Tokenkeeper",
        skip_authorization: bool = False,
        confidential: bool = True,
    ) -> tuple[str, str]:
        """Create (or replace) a confidential authorization-code application.

        Returns ``(client_id, client_secret)`` -- the secret in plaintext (DOT
        stores only its hash).  Also remembered as ``self.client_id`` /
        ``self.client_secret``.
        """
        uris = [redirect_uri] if isinstance(redirect_uri, str) else list(redirect_uri)
        client_id = client_id or f"tk-{secrets.token_hex(8)}"
        client_secret = client_secret or secrets.token_urlsafe(32)
        self._control(
            "apps",
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": uris,
                "name": name,
                "skip_authorization": skip_authorization,
                "client_type": "confidential" if confidential else "public",
            },
        )
        self.client_id, self.client_secret = client_id, client_secret
        return client_id, client_secret

    def add_user(self, username: str, password: str, email: str = "") -> dict:
        return self._control("users", {"username": username, "password": password, "email": email})

    def expire_access_tokens(self, token: str | None = None) -> int:
        """Make all access tokens (or just ``token``) expired right now."""
        return self._control("expire-access-tokens", {"token": token})["expired"]

    def revoke_all(self) -> int:
        """Revoke every refresh token and delete every access token."""
        return self._control("revoke-all")["revoked_refresh_tokens"]

    def state(self) -> dict:
        """Token counts: access_tokens, valid_access_tokens, refresh_tokens,
        active_refresh_tokens, revoked_refresh_tokens."""
        return self._control("state")
