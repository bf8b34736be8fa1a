"""common.redisclients: one client per process and URL, none without a URL."""

import os
from unittest import mock

from common import redisclients


def test_one_client_per_url_in_a_process_and_none_without_a_url():
    first = redisclients.for_process("redis://127.0.0.1:6379/11")

    assert redisclients.for_process("redis://127.0.0.1:6379/11") is first
    assert redisclients.for_process("redis://127.0.0.1:6379/12") is not first
    assert redisclients.for_process("") is None


def test_a_forked_process_makes_its_own_and_drops_its_parents():
    parent = redisclients.for_process("redis://127.0.0.1:6379/11")
    with mock.patch.object(os, "getpid", return_value=os.getpid() + 100_000):
        child = redisclients.for_process("redis://127.0.0.1:6379/11")

    assert child is not parent
    assert all(pid == os.getpid() + 100_000 for pid, _ in redisclients._clients)
