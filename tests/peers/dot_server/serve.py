#!/usr/bin/env python
"""Run the stand-alone django-oauth-toolkit peer.

    python tests/peers/dot_server/serve.py --port 0 --db /tmp/x/dot.sqlite3 \
        [--port-file /tmp/x/port] [--user alice --password secret]

or ``python -m tests.peers.dot_server.serve ...`` from the repository root.
It migrates the SQLite database, optionally creates a user, then serves with
Django's threaded WSGI server (``django.core.servers.basehttp.run``) on
127.0.0.1.  ``--port 0`` binds a free port; the chosen port is written to
``--port-file`` (atomically) and printed as ``LISTENING <port>`` on stdout.

Sub-command ``manage`` runs a Django management command in the peer's
environment instead: ``serve.py --db PATH manage createsuperuser ...``.
It never imports Tokenkeeper's settings: ``DJANGO_SETTINGS_MODULE`` is forced
to this peer's own ``dot_server.settings``.
"""

import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_DIR = os.path.dirname(HERE)  # .../tests/peers  -> makes "dot_server" importable


def _prepare_sys_path() -> None:
    # Running as a script puts this directory first on sys.path (which would
    # make our settings.py importable as a top-level "settings"); replace it
    # with the parent so the package is imported as "dot_server".
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]
    if PEERS_DIR not in sys.path:
        sys.path.insert(0, PEERS_DIR)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", default=None)
    parser.add_argument("--db", required=True, help="SQLite database path")
    parser.add_argument("--user", default=None, help="create/update this user")
    parser.add_argument("--password", default=None)
    parser.add_argument("--email", default=None)
    parser.add_argument("--access-token-lifetime", type=int, default=None)
    parser.add_argument("--no-migrate", action="store_true")
    parser.add_argument(
        "--template-db",
        default=None,
        help="cache of a migrated empty database: copied to --db when present, "
        "written after the first migrate otherwise (saves ~2.5 s per start)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="'manage <django command> [args]'")
    args = parser.parse_args(argv)

    os.environ["DOT_PEER_DB"] = os.path.abspath(args.db)
    if args.access_token_lifetime is not None:
        os.environ["DOT_PEER_ACCESS_TOKEN_EXPIRE_SECONDS"] = str(args.access_token_lifetime)
    os.environ["DJANGO_SETTINGS_MODULE"] = "dot_server.settings"
    _prepare_sys_path()

    import django

    django.setup()
    from django.core.management import call_command, execute_from_command_line

    if args.command:
        if args.command[0] != "manage":
            parser.error("only the 'manage' sub-command is supported")
        execute_from_command_line(["serve.py", *args.command[1:]])
        return 0

    if not args.no_migrate:
        fresh = not os.path.exists(args.db)
        if fresh and args.template_db and os.path.exists(args.template_db):
            shutil.copyfile(args.template_db, args.db)
        call_command("migrate", interactive=False, verbosity=0)  # a no-op when up to date
        if fresh and args.template_db and not os.path.exists(args.template_db):
            from django.db import connection

            connection.close()
            tmp = f"{args.template_db}.{os.getpid()}.tmp"
            shutil.copyfile(args.db, tmp)
            os.replace(tmp, args.template_db)

    if args.user:
        from django.contrib.auth import get_user_model

        User = get_user_model()
        user, _ = User.objects.get_or_create(username=args.user)
        if args.email is not None:
            user.email = args.email
        if args.password is not None:
            user.set_password(args.password)
        user.save()

    from django.core.servers.basehttp import WSGIServer, run

    class Server(WSGIServer):
        request_queue_size = 128

        def server_bind(self):
            super().server_bind()
            self.server_name = args.host  # skip reverse-DNS noise in WSGI environ

    def on_bind(port: int) -> None:
        if args.port_file:
            tmp = args.port_file + ".tmp"
            with open(tmp, "w") as fh:
                fh.write(str(port))
            os.replace(tmp, args.port_file)
        print(f"LISTENING {port}", flush=True)

    from django.core.handlers.wsgi import WSGIHandler

    run(args.host, args.port, WSGIHandler(), threading=True, on_bind=on_bind, server_cls=Server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
