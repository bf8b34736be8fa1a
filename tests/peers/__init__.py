"""Live HTTP OAuth 2.0 peers used by the test suite.

* :mod:`.exact_online` -- an in-process (thread) emulator of Exact Online's
  OAuth 2.0 endpoints and a sliver of its REST API.
* :mod:`.dot` -- a helper that runs an independent django-oauth-toolkit
  authorization server (``dot_server/``) in a separate process.
"""
