"""Tests of the Python client facade: error mapping and status decoding (helpers: test_client_helpers).

The test side builds real ``google.rpc.Status`` bytes with googleapis-common-protos
(installed for tests only); the client decodes them with its private descriptor pool.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2, duration_pb2

CLIENT_DIR = Path(__file__).resolve().parents[1] / "clients" / "python"
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))

import modelruntime
from google.rpc import code_pb2, error_details_pb2, status_pb2
from modelruntime import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncModelRuntimeClient,
    AuthenticationError,
    BadRequestError,
    CredentialsValidationError,
    InternalServerError,
    ModelRuntimeClient,
    ModelRuntimeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestCancelledError,
    ServiceUnavailableError,
    UnsupportedError,
    from_rpc_error,
    user,
)
from modelruntime.v1 import llm_service_pb2, tts_service_pb2

from tests.helpers import stream_chunk

SC = grpc.StatusCode
STATUS_KEY = "grpc-status-details-bin"


# --------------------------------------------------------------------------- helpers


def _pack(msg) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(msg)
    return a


def make_status(
    code: SC,
    message: str = "boom",
    *,
    reason: str | None = None,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    retry_after: float | None = None,
    violations: list[tuple[str, str]] = (),
    resource: tuple[str, str] | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> status_pb2.Status:
    status = status_pb2.Status(code=code.value[0], message=message)
    if reason is not None:
        md = {"provider": provider, "model": model, **(extra_metadata or {})}
        status.details.append(
            _pack(error_details_pb2.ErrorInfo(reason=reason, domain="modelruntime", metadata=md))
        )
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after * 1e9))
        status.details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    if violations:
        br = error_details_pb2.BadRequest()
        for f, d in violations:
            br.field_violations.add(field=f, description=d)
        status.details.append(_pack(br))
    if resource is not None:
        status.details.append(
            _pack(error_details_pb2.ResourceInfo(resource_type=resource[0], resource_name=resource[1]))
        )
    return status


class FakeRpcError(grpc.RpcError):
    """Shaped like grpc's _InactiveRpcError: code(), details(), trailing_metadata()."""

    def __init__(self, code: SC, details: str = "", trailing: tuple = ()) -> None:
        super().__init__(details)
        self._code, self._details, self._trailing = code, details, trailing

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailing


def rpc_error(
    status: status_pb2.Status | None, code: SC | None = None, details: str | None = None
) -> FakeRpcError:
    if status is None:
        return FakeRpcError(code, details or "", ())
    return FakeRpcError(
        code or SC(next(c for c in SC if c.value[0] == status.code)),
        status.message if details is None else details,
        ((STATUS_KEY, status.SerializeToString()), ("other-key", "x")),
    )


# --------------------------------------------------------------------------- mapping


MAPPING = [
    # (code, ErrorInfo reason or None for no details, expected class)
    (SC.UNAVAILABLE, "InvokeConnectionError", APIConnectionError),
    (SC.UNAVAILABLE, None, APIConnectionError),  # transport failure: no ErrorInfo
    (SC.DEADLINE_EXCEEDED, None, APITimeoutError),
    (SC.DEADLINE_EXCEEDED, "InvokeConnectionError", APITimeoutError),
    (SC.INVALID_ARGUMENT, "InvokeBadRequestError", BadRequestError),
    (SC.INVALID_ARGUMENT, None, BadRequestError),
    (SC.FAILED_PRECONDITION, "InvokeBadRequestError", BadRequestError),
    (SC.INVALID_ARGUMENT, "InvokeAuthorizationError", AuthenticationError),  # bad provider credentials
    (SC.UNAUTHENTICATED, "InvokeAuthorizationError", AuthenticationError),
    (SC.PERMISSION_DENIED, None, PermissionDeniedError),  # a subclass of AuthenticationError,
    (SC.INVALID_ARGUMENT, "CredentialsValidateFailedError", CredentialsValidationError),
    (SC.FAILED_PRECONDITION, "CredentialsValidateFailedError", CredentialsValidationError),
    (SC.NOT_FOUND, "InvokeBadRequestError", NotFoundError),
    (SC.NOT_FOUND, None, NotFoundError),
    (SC.RESOURCE_EXHAUSTED, "InvokeRateLimitError", RateLimitError),
    (SC.RESOURCE_EXHAUSTED, None, RateLimitError),
    (SC.UNAVAILABLE, "InvokeRateLimitError", RateLimitError),
    (SC.UNAVAILABLE, "InvokeServerUnavailableError", ServiceUnavailableError),
    (SC.INTERNAL, "InvokeServerUnavailableError", ServiceUnavailableError),
    (SC.UNAVAILABLE, "InvokeError", ServiceUnavailableError),
    (SC.UNIMPLEMENTED, "InvokeBadRequestError", UnsupportedError),
    (SC.UNIMPLEMENTED, None, UnsupportedError),
    (SC.CANCELLED, None, RequestCancelledError),
    (SC.INTERNAL, "InvokeError", InternalServerError),
    (SC.UNKNOWN, None, InternalServerError),
    (SC.DATA_LOSS, None, InternalServerError),
    (SC.ABORTED, "InvokeError", APIStatusError),
    (SC.ABORTED, "InvokeBadRequestError", BadRequestError),
]


@pytest.mark.parametrize(
    ("code", "reason", "expected"), MAPPING, ids=lambda v: getattr(v, "name", None) or str(v)
)
def test_from_rpc_error_maps_code_and_reason(code, reason, expected):
    if reason is None:
        err = rpc_error(None, code=code, details="plain failure")
    else:
        err = rpc_error(make_status(code, "provider said no", reason=reason), code=code)
    exc = from_rpc_error(err)
    assert type(exc) is expected
    assert isinstance(exc, ModelRuntimeError)
    assert exc.code is code
    assert exc.rpc_error is err
    if reason is not None:
        assert exc.reason == reason
        assert exc.domain == "modelruntime"
        assert exc.provider == "openai"
        assert exc.model == "gpt-4o-mini"
        assert exc.message == "provider said no"
    else:
        assert exc.reason == ""
        assert exc.provider == "" and exc.model == ""
        assert exc.message == "plain failure"


def test_hierarchy():
    assert issubclass(APITimeoutError, APIConnectionError)
    assert not issubclass(APIConnectionError, APIStatusError)
    for cls in (
        BadRequestError,
        AuthenticationError,
        CredentialsValidationError,
        NotFoundError,
        RateLimitError,
        ServiceUnavailableError,
        UnsupportedError,
        RequestCancelledError,
        InternalServerError,
    ):
        assert issubclass(cls, APIStatusError)
        assert issubclass(cls, ModelRuntimeError)
    assert "APIConnectionError" in modelruntime.errors.__doc__  # the tree is documented


def test_rate_limit_carries_retry_after_and_metadata():
    status = make_status(
        SC.RESOURCE_EXHAUSTED,
        "Rate limit reached",
        reason="InvokeRateLimitError",
        provider="anthropic",
        model="claude-3-5-haiku",
        retry_after=2.5,
        extra_metadata={"upstream_status": "429"},
    )
    exc = from_rpc_error(rpc_error(status))
    assert isinstance(exc, RateLimitError)
    assert exc.retry_after == pytest.approx(2.5)
    assert exc.provider == "anthropic"
    assert exc.model == "claude-3-5-haiku"
    assert exc.metadata == {"provider": "anthropic", "model": "claude-3-5-haiku", "upstream_status": "429"}
    assert "RESOURCE_EXHAUSTED" in str(exc) and "InvokeRateLimitError" in str(exc)
    assert "Rate limit reached" in str(exc)


def test_retry_after_absent_is_none():
    exc = from_rpc_error(rpc_error(make_status(SC.RESOURCE_EXHAUSTED, reason="InvokeRateLimitError")))
    assert exc.retry_after is None


def test_retry_after_whole_seconds():
    exc = from_rpc_error(
        rpc_error(make_status(SC.UNAVAILABLE, reason="InvokeRateLimitError", retry_after=30))
    )
    assert isinstance(exc, RateLimitError)
    assert exc.retry_after == 30.0


def test_bad_request_field_violations():
    status = make_status(
        SC.INVALID_ARGUMENT,
        "model_parameters.temperature: must be <= 2",
        reason="InvokeBadRequestError",
        violations=[
            ("model_parameters.temperature", "must be <= 2"),
            ("messages[2].content", "must not be empty"),
        ],
    )
    exc = from_rpc_error(rpc_error(status))
    assert isinstance(exc, BadRequestError)
    assert exc.field_violations == [
        ("model_parameters.temperature", "must be <= 2"),
        ("messages[2].content", "must not be empty"),
    ]
    fv = exc.field_violations[0]
    assert fv.field == "model_parameters.temperature" and fv.description == "must be <= 2"


def test_credentials_validation_violation_and_resource_info():
    status = make_status(
        SC.INVALID_ARGUMENT,
        "Credentials validation failed",
        reason="CredentialsValidateFailedError",
        violations=[("credentials.openai_api_key", "is required")],
        resource=("model", "openai/gpt-4o-mini"),
    )
    exc = from_rpc_error(rpc_error(status))
    assert isinstance(exc, CredentialsValidationError)
    assert exc.field_violations == [("credentials.openai_api_key", "is required")]
    assert len(exc.resource_info) == 1
    assert exc.resource_info[0].resource_type == "model"
    assert exc.resource_info[0].resource_name == "openai/gpt-4o-mini"


def test_unknown_details_are_ignored():
    status = make_status(SC.NOT_FOUND, "no such model", reason="InvokeBadRequestError")
    status.details.append(_pack(error_details_pb2.DebugInfo(detail="stack")))
    status.details.append(_pack(error_details_pb2.LocalizedMessage(locale="en-US", message="hi")))
    exc = from_rpc_error(rpc_error(status))
    assert isinstance(exc, NotFoundError)
    assert exc.reason == "InvokeBadRequestError"


def test_undecodable_status_falls_back_to_code():
    err = FakeRpcError(SC.RESOURCE_EXHAUSTED, "slow down", ((STATUS_KEY, b"\xff\xff\xff not a proto"),))
    exc = from_rpc_error(err)
    assert type(exc) is RateLimitError
    assert exc.reason == "" and exc.retry_after is None
    assert exc.message == "slow down"


def test_message_falls_back_to_status_message():
    status = make_status(SC.INTERNAL, "from the status", reason="InvokeError")
    exc = from_rpc_error(rpc_error(status, details=""))
    assert exc.message == "from the status"


def test_from_rpc_error_is_idempotent_and_tolerates_odd_errors():
    exc = from_rpc_error(rpc_error(make_status(SC.INTERNAL, reason="InvokeError")))
    assert from_rpc_error(exc) is exc  # type: ignore[arg-type]

    class Bare(grpc.RpcError):
        pass

    bare = from_rpc_error(Bare("no code at all"))
    assert type(bare) is APIConnectionError
    assert bare.code is None


def test_grpc_status_codes_agree_with_google_rpc_code():
    # The test builds Status.code from grpc.StatusCode; make sure numbering matches google.rpc.Code.
    assert SC.RESOURCE_EXHAUSTED.value[0] == code_pb2.RESOURCE_EXHAUSTED
    assert SC.UNAVAILABLE.value[0] == code_pb2.UNAVAILABLE


# --------------------------------------------------------------------------- private descriptor pool


def test_private_pool_coexists_with_googleapis_in_process():
    from google.protobuf import descriptor_pool
    from modelruntime import _rpc_status

    # Our classes are not the default pool's, yet read the same bytes.
    assert _rpc_status.Status is not status_pb2.Status
    assert _rpc_status.Status.DESCRIPTOR.full_name == "google.rpc.Status"
    assert (
        descriptor_pool.Default().FindMessageTypeByName("google.rpc.Status") is status_pb2.Status.DESCRIPTOR
    )
    assert _rpc_status.Status.DESCRIPTOR is not status_pb2.Status.DESCRIPTOR
    decoded = _rpc_status.decode_status(
        make_status(SC.INTERNAL, "x", reason="InvokeError").SerializeToString()
    )
    assert decoded.reason == "InvokeError"
    # googleapis' own classes still work after ours were built.
    rt = status_pb2.Status.FromString(make_status(SC.INTERNAL, "y").SerializeToString())
    assert rt.message == "y"


@pytest.mark.parametrize("client_first", [True, False], ids=["client-first", "googleapis-first"])
def test_private_pool_no_conflict_in_fresh_process(client_first):
    client_import = textwrap.dedent(
        """
        from google.protobuf import descriptor_pool
        import modelruntime
        from modelruntime.errors import from_rpc_error
        if not GOOGLEAPIS_LOADED:
            try:
                descriptor_pool.Default().FindMessageTypeByName("google.rpc.Status")
            except KeyError:
                pass
            else:
                raise SystemExit("client polluted the default descriptor pool")
        """
    )
    googleapis_import = textwrap.dedent(
        """
        from google.rpc import status_pb2, error_details_pb2
        GOOGLEAPIS_LOADED = True
        """
    )
    check = textwrap.dedent(
        """
        from google.protobuf import any_pb2
        from modelruntime import _rpc_status
        s = status_pb2.Status(code=8, message="m")
        a = any_pb2.Any(); a.Pack(error_details_pb2.ErrorInfo(reason="InvokeRateLimitError"))
        s.details.append(a)
        d = _rpc_status.decode_status(s.SerializeToString())
        assert d.reason == "InvokeRateLimitError", d
        print("ok")
        """
    )
    parts = ["GOOGLEAPIS_LOADED = False"]
    parts += [client_import, googleapis_import] if client_first else [googleapis_import, client_import]
    parts.append(check)
    proc = subprocess.run(
        [sys.executable, "-c", "\n".join(parts)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONPATH": str(CLIENT_DIR), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# --------------------------------------------------------------------------- in-process server


def _abort_status(status: status_pb2.Status) -> grpc.Status:
    from grpc_status import rpc_status  # test-only dependency

    return rpc_status.to_status(status)


def _generic_handler() -> grpc.GenericRpcHandler:
    async def stream_generate(request, context):
        assert request.target.credentials["api_key"] == "sk-test"
        assert request.model_parameters["temperature"] == pytest.approx(0.5)
        yield stream_chunk("Hel", id="g1", model=request.target.model)
        yield stream_chunk("lo", tool_calls=[{"index": 0, "id": "c", "name": "f", "arguments": "{}"}])
        s = _abort_status(
            make_status(
                SC.RESOURCE_EXHAUSTED,
                "Rate limit reached",
                reason="InvokeRateLimitError",
                provider=request.target.provider,
                model=request.target.model,
                retry_after=1.25,
            )
        )
        await context.abort(s.code, s.details, s.trailing_metadata)

    async def generate(request, context):
        s = _abort_status(
            make_status(
                SC.INVALID_ARGUMENT,
                "Incorrect API key provided",
                reason="InvokeAuthorizationError",
                provider=request.target.provider,
                model=request.target.model,
                violations=[("credentials.api_key", "rejected by the provider")],
            )
        )
        await context.abort(s.code, s.details, s.trailing_metadata)

    async def count_tokens(request, context):
        return llm_service_pb2.CountTokensResponse(tokens=len(request.messages) * 7)

    async def stream_synthesize(request, context):
        for part in (b"ID3", b"", b"audio"):
            yield tts_service_pb2.StreamSynthesizeResponse(
                audio=part, encoding=tts_service_pb2.AUDIO_ENCODING_MP3, mime_type="audio/mpeg"
            )

    llm = grpc.method_handlers_generic_handler(
        "modelruntime.v1.LLMService",
        {
            "StreamGenerate": grpc.unary_stream_rpc_method_handler(
                stream_generate,
                request_deserializer=llm_service_pb2.StreamGenerateRequest.FromString,
                response_serializer=llm_service_pb2.StreamGenerateResponse.SerializeToString,
            ),
            "Generate": grpc.unary_unary_rpc_method_handler(
                generate,
                request_deserializer=llm_service_pb2.GenerateRequest.FromString,
                response_serializer=llm_service_pb2.GenerateResponse.SerializeToString,
            ),
            "CountTokens": grpc.unary_unary_rpc_method_handler(
                count_tokens,
                request_deserializer=llm_service_pb2.CountTokensRequest.FromString,
                response_serializer=llm_service_pb2.CountTokensResponse.SerializeToString,
            ),
        },
    )
    tts = grpc.method_handlers_generic_handler(
        "modelruntime.v1.TTSService",
        {
            "StreamSynthesize": grpc.unary_stream_rpc_method_handler(
                stream_synthesize,
                request_deserializer=tts_service_pb2.StreamSynthesizeRequest.FromString,
                response_serializer=tts_service_pb2.StreamSynthesizeResponse.SerializeToString,
            ),
        },
    )
    return [llm, tts]


@asynccontextmanager
async def running_server():
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(_generic_handler())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


CALL = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "credentials": {"api_key": "sk-test"},
    "messages": [user("Hi")],
    "model_parameters": {"temperature": 0.5},
}


async def test_async_stream_error_mid_stream_is_converted():
    async with (
        running_server() as target,
        AsyncModelRuntimeClient(target, timeout=10, generation_timeout=10) as client,
    ):
        stream = client.llm.stream(**CALL)
        seen = []
        with pytest.raises(RateLimitError) as info:
            async for chunk in stream:
                seen.append(chunk.delta.content)
        assert seen == ["Hel", "lo"]  # the error came after two chunks
        exc = info.value
        assert exc.code is SC.RESOURCE_EXHAUSTED
        assert exc.retry_after == pytest.approx(1.25)
        assert exc.provider == "openai" and exc.model == "gpt-4o-mini"
        assert isinstance(exc.__cause__, grpc.RpcError)
        # what was received before the error is still accumulated
        partial = stream.accumulator.result()
        assert partial.message.content == "Hello"
        assert partial.message.tool_calls[0].name == "f"


async def test_async_unary_error_and_success():
    async with running_server() as target, AsyncModelRuntimeClient(target, timeout=10) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.llm.generate(**CALL)
        exc = info.value
        assert exc.code is SC.INVALID_ARGUMENT  # bad provider credentials: keyed on the reason
        assert exc.reason == "InvokeAuthorizationError"
        assert exc.field_violations == [("credentials.api_key", "rejected by the provider")]
        resp = await client.llm.count_tokens(provider="openai", model="m", messages=[user("a"), user("b")])
        assert resp.tokens == 14

        tts = client.tts.stream(provider="openai", model="tts-1", text="hi", encoding="mp3")
        await tts.peek()
        assert tts.mime_type == "audio/mpeg" and tts.format == "mp3"
        assert await tts.read() == b"ID3audio"


async def test_sync_client_stream_and_unary_errors_are_converted():
    async with running_server() as target:

        def run_sync():
            with ModelRuntimeClient(target, timeout=10, generation_timeout=10) as client:
                stream = client.llm.stream(**CALL)
                got = []
                try:
                    for chunk in stream:
                        got.append(chunk.delta.content)
                except RateLimitError as exc:
                    rate = exc
                else:  # pragma: no cover
                    raise AssertionError("no error")
                try:
                    client.llm.generate(**CALL)
                except AuthenticationError as exc:
                    auth = exc
                else:  # pragma: no cover
                    raise AssertionError("no error")
                tts = client.tts.stream(provider="openai", model="tts-1", text="hi")
                assert tts.mime_type == "audio/mpeg"  # peeks the first chunk
                audio = tts.read()
                return got, rate, auth, audio

        got, rate, auth, audio = await asyncio.to_thread(run_sync)
        assert got == ["Hel", "lo"]
        assert rate.retry_after == pytest.approx(1.25)
        assert auth.reason == "InvokeAuthorizationError"
        assert audio == b"ID3audio"


async def test_unreachable_server_is_a_connection_error():
    async with AsyncModelRuntimeClient("127.0.0.1:1", timeout=5) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.providers.list()
        assert not isinstance(info.value, APIStatusError)
        with pytest.raises(APIConnectionError):
            async for _ in client.llm.stream(**CALL):
                pass


async def test_deadline_is_a_timeout_error():
    async def slow(request, context):
        await asyncio.sleep(5)
        return llm_service_pb2.CountTokensResponse()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "modelruntime.v1.LLMService",
                {
                    "CountTokens": grpc.unary_unary_rpc_method_handler(
                        slow,
                        request_deserializer=llm_service_pb2.CountTokensRequest.FromString,
                        response_serializer=llm_service_pb2.CountTokensResponse.SerializeToString,
                    )
                },
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with AsyncModelRuntimeClient(f"127.0.0.1:{port}") as client:
            with pytest.raises(APITimeoutError):
                await client.llm.count_tokens(provider="p", model="m", messages=[user("x")], timeout=0.2)
    finally:
        await server.stop(None)
