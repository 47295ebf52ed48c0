"""What a web page can do with the HTTP endpoint (server/http/browser.py): non-JSON bodies are 415,
a foreign Origin is 403, a listed origin gets CORS headers and a preflight answer."""

from __future__ import annotations

import httpx
import pytest

from server.app import start_server
from server.config import HttpConfig, ProviderCredentials
from server.http.app import start_http
from tests.conftest import make_config
from tests.mocks.openai_mock import OpenAIMock

KEY = "sk-browser"
ALLOWED = "https://app.example.com"
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
async def mock():
    async with OpenAIMock(api_keys=[KEY]) as m:
        yield m


@pytest.fixture(scope="module")
async def base(mock):
    config = make_config(providers={"openai": ProviderCredentials(
        credentials={"openai_api_key": KEY, "openai_api_base": mock.url})})
    config.http = HttpConfig(enabled=True, port=0, cors_allowed_origins=[ALLOWED])
    running = await start_server(config)
    running.http = await start_http(config, running.runtime)
    yield f"http://127.0.0.1:{running.http.port}"
    await running.stop(0, 0)


@pytest.mark.parametrize("content_type", [None, "text/plain", "multipart/form-data; boundary=x",
                                          "application/x-www-form-urlencoded"])
async def test_chat_refuses_non_json_content_types_with_415(base, mock, content_type):
    seen = len(mock.requests)
    headers = {"content-type": content_type} if content_type else {}
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/v1/chat/completions", content=httpx.Request("POST", "/", json=CHAT).content,
                            headers=headers)
    assert r.status_code == 415
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "unsupported_media_type"
    assert len(mock.requests) == seen  # the provider was never called


async def test_json_content_type_with_charset_is_accepted_and_multipart_route_wants_multipart(base):
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/v1/chat/completions", json=CHAT,
                            headers={"content-type": "Application/JSON; charset=utf-8"})
        assert r.status_code == 200, r.text
        r = await http.post("/v1/audio/transcriptions", json={"model": "openai/whisper-1"})
        assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]["message"]


async def test_foreign_origin_is_403_even_for_a_valid_json_request(base, mock):
    seen = len(mock.requests)
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/v1/chat/completions", json=CHAT, headers={"origin": "http://evil.example"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in r.headers
        r = await http.get("/v1/models", headers={"origin": "null"})
        assert r.status_code == 403
        r = await http.options("/v1/chat/completions", headers={
            "origin": "http://evil.example", "access-control-request-method": "POST"})
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    assert len(mock.requests) == seen


async def test_listed_origin_gets_cors_headers_and_preflight(base):
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.options("/v1/chat/completions", headers={
            "origin": ALLOWED, "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, authorization"})
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == ALLOWED
        assert "POST" in r.headers["access-control-allow-methods"]
        assert r.headers["access-control-allow-headers"] == "content-type, authorization"
        r = await http.post("/v1/chat/completions", json=CHAT, headers={"origin": ALLOWED})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED
        r = await http.post("/v1/chat/completions", content=b"x", headers={"origin": ALLOWED})
        assert r.status_code == 415 and r.headers["access-control-allow-origin"] == ALLOWED  # readable error
