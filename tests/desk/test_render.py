"""A desk page shows any text a customer managed to get into a transcript."""
from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from bot.desk.pages import render


def test_a_lone_surrogate_does_not_fail_the_page() -> None:
    # JSON lets a client send "\ud800"; Rasa keeps it and the desk reads it back as a
    # str that has no UTF-8 form (a fuzzed chat once made its conversation page a 500).
    response = render(make_mocked_request("GET", "/desk/"), "error.html", {"message": "坏了\ud800吗"}, status=503)
    assert response.status == 503
    assert "坏了?吗".encode("utf-8") in response.body


def test_a_lone_surrogate_does_not_fail_the_json_api() -> None:
    # The same text through the desk's JSON API (a fuzzed chat made
    # /desk/api/conversations/1 a 500 in CI): written as its JSON escape, so the
    # body is UTF-8 and a parser reads back exactly what was stored.
    import json

    from aiohttp import web

    from bot.desk.api import json_response

    data = {"transcript": [{"text": "坏了\udf6b吗 <b>😀</b>"}]}
    response = json_response(data)
    assert isinstance(response, web.Response) and response.status == 200
    assert json.loads(response.body.decode("utf-8")) == data
    assert b"<b>" not in response.body
