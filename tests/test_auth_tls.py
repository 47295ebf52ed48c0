"""TLS on both front doors from the config, and mTLS whose certificate identity is a caller key.

A throwaway CA (tests/tls_certs.py) signs the server certificate (127.0.0.1, localhost) and client
certificates. Driven through gRPC (typed admin client, raw stubs, grpcurl), the official openai SDK
over HTTPS and plain HTTPS requests with client certificates:

- TLS: both ports speak only TLS; bearer keys work over it; a plaintext client gets nowhere.
- mTLS required: a client certificate whose common name is a key's ``cert_identity`` authenticates
  as that key on both doors (the ledger shows it), a certificate without a key is UNAUTHENTICATED
  unless a bearer key is also sent, and no certificate or one from another CA fails the handshake.
- mTLS optional: HTTPS maps a certificate when one is presented and takes bearer keys otherwise;
  the gRPC port (grpcio cannot ask for a certificate optionally) takes bearer keys only.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import openai
import pytest
from modelruntime.admin import AsyncAdminClient

from server.config import TlsConfig
from tests.auth_env import auth_server, bearer, creds, details, req, upstream_fixture
from tests.tls_certs import CA

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


mock = upstream_fixture()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca, other = CA(folder), CA(folder, "Another CA")
    return {"ca": ca, "server": ca.issue("server", "model-runtime", server=True),
            "svc": ca.issue("svc", "svc-a", server=False), "tool": ca.issue("tool", "admin-tool", server=False),
            "stranger": ca.issue("stranger", "nobody", server=False),
            "foreign": other.issue("foreign", "svc-a", server=False)}


def _tls(pki, require: bool) -> TlsConfig:
    return TlsConfig(cert_file=str(pki["server"].cert), key_file=str(pki["server"].key),
                     client_ca_file=str(pki["ca"].path), require_client_cert=require)


def _channel_creds(pki, client: str | None = None) -> grpc.ChannelCredentials:
    root = pki["ca"].path.read_bytes()
    if client is None:
        return grpc.ssl_channel_credentials(root)
    cert, key = pki[client].pem()
    return grpc.ssl_channel_credentials(root, key, cert)


def _https(pki, client: str | None = None) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=str(pki["ca"].path))
    if client is not None:
        context.load_cert_chain(str(pki[client].cert), str(pki[client].key))
    return httpx.AsyncClient(verify=context, timeout=30)


def _generate(port: int, pki, client: str | None, metadata=()):
    channel = grpc.aio.secure_channel(f"127.0.0.1:{port}", _channel_creds(pki, client))
    from modelruntime.v1 import llm_service_pb2_grpc

    return channel, llm_service_pb2_grpc.LLMServiceStub(channel)


async def _chat(http: httpx.AsyncClient, base: str, mock, authorization: str = "") -> httpx.Response:
    headers = {"x-provider-credentials": json.dumps(creds(mock))}
    if authorization:
        headers["authorization"] = authorization
    return await http.post(f"{base}/chat/completions", json=CHAT, headers=headers)


async def test_required_mtls_maps_certificates_to_keys_on_both_doors(tmp_path, pki, mock):
    async with auth_server(tmp_path, _channel_creds(pki, "tool"), tls=_tls(pki, True)) as server:
        port, base = server["running"].port, server["http"]
        svc = await server["admin"].create_key("svc-a", cert_identity="svc-a")
        other = await server["admin"].create_key("other")

        channel, llm = _generate(port, pki, "svc")
        assert (await llm.Generate(req(mock, creds(mock)))).message.content  # no bearer: the certificate
        await channel.close()
        channel, llm = _generate(port, pki, "stranger")
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await llm.Generate(req(mock, creds(mock)))
        assert details(unknown.value)["ErrorInfo"].reason == "CALLER_KEY_MISSING"
        assert (await llm.Generate(req(mock, creds(mock)), metadata=bearer(other.secret))).message.content
        await channel.close()
        for client in (None, "foreign"):  # no certificate, or one from another CA: no handshake
            channel, llm = _generate(port, pki, client)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await llm.Generate(req(mock, creds(mock)), metadata=bearer(other.secret), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            await channel.close()

        async with _https(pki, "svc") as http:
            assert (await _chat(http, base, mock)).status_code == 200
        async with _https(pki, "stranger") as http:
            assert (await _chat(http, base, mock)).status_code == 401
            assert (await _chat(http, base, mock, f"Bearer {other.secret}")).status_code == 200
        for client in (None, "foreign"):
            async with _https(pki, client) as http:
                with pytest.raises(httpx.HTTPError):
                    await _chat(http, base, mock, f"Bearer {other.secret}")

        totals = await server["admin"].query_usage(key_id=svc.key.id)
        assert {(t.model, s): n for t in totals for s, n in t.statuses.items()} == {("gpt-4o-mini", "OK"): 2}


async def test_tls_with_optional_client_certificates(tmp_path, pki, mock):
    async with auth_server(tmp_path, _channel_creds(pki), tls=_tls(pki, False)) as server:
        port, base = server["running"].port, server["http"]
        await server["admin"].create_key("svc-a", cert_identity="svc-a")
        plain = await server["admin"].create_key("plain")

        channel, llm = _generate(port, pki, None)
        assert (await llm.Generate(req(mock, creds(mock)), metadata=bearer(plain.secret))).message.content
        await channel.close()
        channel, llm = _generate(port, pki, "svc")
        with pytest.raises(grpc.aio.AioRpcError) as no_cert:  # grpcio did not ask for the certificate
            await llm.Generate(req(mock, creds(mock)))
        assert no_cert.value.code() == grpc.StatusCode.UNAUTHENTICATED
        await channel.close()
        insecure = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        with pytest.raises(grpc.aio.AioRpcError) as cleartext:
            await AsyncAdminClient(channel=insecure, api_key=server["secret"], timeout=5).list_keys()
        assert cleartext.value.code() == grpc.StatusCode.UNAVAILABLE
        await insecure.close()

        async with _https(pki, "svc") as http:
            assert (await _chat(http, base, mock)).status_code == 200  # HTTPS asked for it optionally
        async with _https(pki) as http:
            assert (await _chat(http, base, mock)).status_code == 401
        tls_client = openai.AsyncOpenAI(base_url=base, api_key=plain.secret, max_retries=0, http_client=_https(pki))
        out = await tls_client.chat.completions.create(
            **CHAT, extra_headers={"x-provider-credentials": json.dumps(creds(mock))})
        assert out.choices[0].message.content
        await tls_client.close()
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the HTTPS port
            async with httpx.AsyncClient(timeout=5) as http:
                await http.post(base.replace("https://", "http://") + "/chat/completions", json=CHAT)

        grpcurl = Path(sys.executable).parent / "grpcurl"
        body = json.dumps({"target": {"provider": "openai", "model": "gpt-4o-mini", "credentials": creds(mock)},
                           "messages": [{"role": "ROLE_USER", "content": [{"text": "hi"}]}]})
        run = await asyncio.to_thread(subprocess.run, [
            str(grpcurl), "-cacert", str(pki["ca"].path), "-H", f"authorization: Bearer {plain.secret}",
            "-d", body, f"127.0.0.1:{port}", "modelruntime.v1.LLMService/Generate"],
            capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        assert "message" in json.loads(run.stdout)
