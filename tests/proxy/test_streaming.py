"""Bodies are streamed through the proxy: a 20 MB answer does not make memory grow with it.

(The request direction is covered by test_proxy's large-body test; its memory cannot be told apart
here, since the test client and the in-process emulator each hold the whole body themselves.)"""

import tracemalloc

import pytest

from tests.proxy.helpers import DIVISION, exact_connection_with_division, proxy_url, tokens_client
from tests.refresh.helpers import wait_until

pytestmark = pytest.mark.usefixtures("budgets")

SIZE = 20 * 1024 * 1024
PEAK_LIMIT = 4 * 1024 * 1024  # what Python allocated at most while the answer went through


@pytest.mark.parametrize("transfer", ["length", "chunked"])
def test_a_20_mb_answer_is_streamed_with_memory_not_growing_with_it(team, exact_client, exact, transfer):
    connection = exact_connection_with_division(exact_client, exact, owner=team.alice)
    exact.set_large_response("crm/Transactions", SIZE, transfer=transfer)
    api = tokens_client(team.a)
    api.get(proxy_url(connection, "current/Me"))  # modules imported on the first request are not the answer's

    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        response = api.get(proxy_url(connection, f"{DIVISION}/crm/Transactions"))
        received, head, tail = 0, b"", b""
        for chunk in response.streaming_content:
            received += len(chunk)
            head = head or chunk[:20]
            tail = (tail + chunk)[-20:]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 200
    assert response.streaming
    assert received == SIZE
    assert head.startswith(b'{"d"') and tail.endswith(b"}")
    assert peak - baseline < PEAK_LIMIT, f"peak {(peak - baseline) / 1e6:.1f} MB"
    if transfer == "length":
        assert response["Content-Length"] == str(SIZE)
    # The emulator records what it wrote once its handler has finished.
    wait_until(lambda: exact.api_requests[-1].response_bytes == SIZE, timeout=5, message="the emulator's count")
