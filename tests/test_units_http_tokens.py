"""Unit tests: SSE/NDJSON parsing, egress policy, offline tokenizers, Dify folders loading as-is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine._http.egress import EgressPolicy
from engine._http.sse import aiter_ndjson_lines, aiter_sse
from engine.loader import load_provider, load_providers
from engine.tokenizers import encoding_for_model, get_encoding


async def _chunks(*parts: bytes):
    for p in parts:
        yield p


async def _events(*parts: bytes):
    return [(e.event, e.data) async for e in aiter_sse(_chunks(*parts))]


async def test_sse_crlf_split_between_cr_and_lf():
    events = await _events(b"data: a\r", b"\ndata: b\r\n\r", b"\n", b"data: c\r\n\r\n")
    assert events == [("message", "a\nb"), ("message", "c")]


async def test_sse_comments_event_names_multiline_and_no_space():
    events = await _events(b": keep-alive\n\nevent: delta\ndata:{\"x\":1}\n\n", b"data: one\ndata: two\n\n")
    assert events == [("delta", '{"x":1}'), ("message", "one\ntwo")]


async def test_sse_split_inside_utf8_and_several_events_per_read():
    payload = "data: café\n\ndata: z\n\n".encode()
    cut = payload.index(b"\xa9")  # inside the é
    assert await _events(payload[:cut], payload[cut:]) == [("message", "café"), ("message", "z")]


async def test_sse_lone_cr_line_endings():
    assert await _events(b"data: x\r\rdata: y\r\r") == [("message", "x"), ("message", "y")]


async def test_sse_trailing_event_without_blank_line_is_delivered():
    assert await _events(b"data: [DONE]") == [("message", "[DONE]")]


async def test_ndjson_lines_split_across_reads():
    lines = [x async for x in aiter_ndjson_lines(_chunks(b'{"a":', b'1}\n{"b":2}\n\n{"c"', b":3}"))]
    assert lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}']


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "::1", "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1",
                                     "0.0.0.0", "224.0.0.1"])
def test_egress_blocks_internal_addresses_by_default(address):
    assert not EgressPolicy().allows(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "104.18.6.192"])
def test_egress_allows_public_addresses(address):
    assert EgressPolicy().allows(address)


def test_egress_allowlist_and_allow_private():
    policy = EgressPolicy.from_config(allowed_cidrs=["127.0.0.1/32", "10.1.0.0/16"])
    assert policy.allows("127.0.0.1") and policy.allows("10.1.2.3")
    assert not policy.allows("127.0.0.2") and not policy.allows("10.2.0.1")
    assert EgressPolicy.from_config(allow_private=True).allows("192.168.0.1")


def test_tokenizers_load_offline_with_known_ids():
    # Known token ids of the published encodings (tiktoken checks the file hash itself).
    assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert encoding_for_model("gpt-4o-mini").name == "o200k_base"
    assert encoding_for_model("gpt-4").name == "cl100k_base"
    assert encoding_for_model("some-unknown-model").name == "cl100k_base"


def test_loaded_encoding_costs_under_60_mb():
    # tiktoken's own get_encoding("o200k_base") adds ~78 MB to a process; the runtime drops the
    # Python copy of the rank table (kept only for pickling) and trims the heap: ~45 MB.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096\n"
        "from engine.tokenizers import count_text\n"
        "before = rss(); n = count_text('hello world, counted', 'gpt-4o-mini'); print(n, rss() - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent.parent)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "4"
    assert int(out[1]) < 60 * 1024 * 1024, f"{int(out[1]) / 1e6:.1f} MB"


DIFY_PROVIDER = """\
provider: acme
label:
  en_US: Acme
description:
  en_US: A Dify provider folder, unchanged.
icon_small:
  en_US: icon_s_en.svg
supported_model_types:
  - llm
configurate_methods:
  - predefined-model
provider_credential_schema:
  credential_form_schemas:
    - variable: api_key
      label:
        en_US: API Key
      type: secret-input
      required: true
"""
DIFY_MODEL = """\
model: acme-large
label:
  zh_Hans: acme-large
  en_US: acme-large
model_type: llm
features:
  - agent-thought
  - tool-call
model_properties:
  mode: chat
  context_size: 32000
parameter_rules:
  - name: temperature
    use_template: temperature
  - name: max_tokens
    use_template: max_tokens
    default: 512
    max: 8192
  - name: top_k
    label:
      en_US: Top k
    type: int
    help:
      en_US: Only sample from the top K options.
  - name: unknown_template_rule
    use_template: no_such_template
    type: string
pricing:
  input: '0.5'
  output: '1.5'
  unit: '0.000001'
  currency: USD
"""


def test_dify_provider_folder_loads_as_is(tmp_path: Path):
    folder = tmp_path / "acme"
    (folder / "llm").mkdir(parents=True)
    (folder / "acme.yaml").write_text(DIFY_PROVIDER)
    (folder / "llm" / "acme-large.yaml").write_text(DIFY_MODEL)
    (folder / "llm" / "acme-small.yaml").write_text(DIFY_MODEL.replace("acme-large", "acme-small"))
    (folder / "llm" / "_position.yaml").write_text("- acme-small\n- acme-large\n")
    schema = load_provider(folder)
    assert schema.entity.runtime == {}  # a plain Dify file: no runtime block needed to load
    models = schema.models[next(iter(schema.models))]
    assert [m.model for m in models] == ["acme-small", "acme-large"]
    rules = {r.name: r for r in models[1].parameter_rules}
    assert rules["max_tokens"].max == 8192 and rules["max_tokens"].min == 1  # template kept, YAML overrides
    assert rules["temperature"].max == 1.0 and rules["temperature"].label.en_US == "Temperature"
    assert rules["top_k"].label.en_US == "Top k"
    assert models[1].fetch_from.value == "predefined-model"


def test_builtin_providers_all_load():
    schemas = load_providers(Path(__file__).parents[1] / "providers" / "definitions")
    assert {"openai", "openai_api_compatible"} <= set(schemas)
    for name, schema in schemas.items():
        assert schema.entity.runtime.get("protocol"), f"{name} names no protocol"


async def test_sse_batches_group_events_per_read():
    from engine._http.sse import aiter_sse_batches

    batches = [[e.data for e in b] async for b in aiter_sse_batches(
        _chunks(b"data: 1\n\ndata: 2\n\ndata: 3", b"\n\n", b"data: 4\n\n"))]
    assert batches == [["1", "2"], ["3"], ["4"]]


def test_merge_chunks_joins_text_and_tool_fragments():
    from engine.messages import LLMChunk, ToolCallDelta
    from providers.kit.stream import merge_chunks

    a = LLMChunk(content="Hel", tool_calls=[ToolCallDelta(0, id="c1", name="f", arguments='{"a"')])
    b = LLMChunk(content="lo", tool_calls=[ToolCallDelta(0, arguments=":1}"), ToolCallDelta(1, id="c2", name="g")])
    merged = merge_chunks(a, b)
    assert merged.content == "Hello"
    assert [(t.index, t.id, t.arguments) for t in merged.tool_calls] == [(0, "c1", '{"a":1}'), (1, "c2", "")]
