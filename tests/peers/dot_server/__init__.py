"""A minimal, independent Django project running django-oauth-toolkit.

It never imports Tokenkeeper's settings; run it with ``serve.py`` (see
``tests/peers/dot.py`` for the helper that starts it as a subprocess).
"""
