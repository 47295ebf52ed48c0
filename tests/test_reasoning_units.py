"""Unit checks behind the reasoning and prompt-cache features: delta merging, the Responses
stream assembler's summary parts, and cache prices (spellings, fall-backs, tiers)."""

from __future__ import annotations

from decimal import Decimal

from engine._http.sse import SSEEvent
from engine.entities import PriceConfig
from engine.messages import LLMChunk, ProviderState, ReasoningDelta, TokenCounts, ToolCallDelta
from engine.pricing import llm_usage
from providers.kit.stream import merge_chunks
from providers.protocols.openai.responses import _Assembler
from providers.protocols.openai.responses_transform import parse_response


def test_merging_deltas_keeps_reasoning_parts_and_state_whole():
    a = LLMChunk(reasoning_content="Let ", reasoning=[ReasoningDelta(0, text="Let ", origin="anthropic")])
    b = LLMChunk(reasoning_content="me", reasoning=[ReasoningDelta(0, text="me")],
                 tool_calls=[ToolCallDelta(0, id="c", name="f", state=ProviderState("gemini", "sig"))])
    c = LLMChunk(reasoning=[ReasoningDelta(0, signature="SIG"), ReasoningDelta(1, encrypted="E", origin="anthropic")],
                 state=ProviderState("gemini", "text-sig"))
    merged = merge_chunks(merge_chunks(a, b), c)
    assert merged.reasoning == [ReasoningDelta(0, text="Let me", signature="SIG", origin="anthropic"),
                                ReasoningDelta(1, encrypted="E", origin="anthropic")]
    assert merged.tool_calls[0].state == ProviderState("gemini", "sig") and merged.state.data == "text-sig"


def _event(kind: str, **data) -> SSEEvent:
    import orjson

    return SSEEvent(event=kind, data=orjson.dumps({"type": kind, **data}).decode())


def test_responses_stream_joins_summary_parts_as_the_unary_answer_does():
    item = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "First."},
                                                          {"type": "summary_text", "text": "Second."}],
            "encrypted_content": "ENC"}
    assembler = _Assembler("gpt-5.4")
    chunks = [assembler.feed(e) for e in (
        _event("response.output_item.added", output_index=0, item={"type": "reasoning", "id": "rs_1", "summary": []}),
        _event("response.reasoning_summary_text.delta", output_index=0, summary_index=0, delta="First."),
        _event("response.reasoning_summary_text.delta", output_index=0, summary_index=1, delta="Second."),
        _event("response.output_item.done", output_index=0, item=item),
        _event("response.completed", response={"id": "resp_1", "status": "completed", "output": [item],
                                               "usage": {"input_tokens": 5, "output_tokens": 9,
                                                         "output_tokens_details": {"reasoning_tokens": 9}}}),
    )]
    pieces = [r for c in chunks if c is not None for r in c.reasoning]
    assert pieces[0] == ReasoningDelta(0, id="rs_1", origin="openai_responses")
    assert "".join(p.text for p in pieces) == "First.\n\nSecond." and pieces[-1].encrypted == "ENC"
    final = assembler.final()
    assert assembler.complete and final.counts == TokenCounts(5, 9, 0, 9) and final.id == "resp_1"
    unary = parse_response({"status": "completed", "output": [item]}, "gpt-5.4").message.reasoning[0]
    assert (unary.text, unary.encrypted, unary.id) == ("First.\n\nSecond.", "ENC", "rs_1")


def test_cache_prices_spellings_and_fall_backs():
    nested = PriceConfig.model_validate({"input": "3", "output": "15", "unit": "0.000001", "currency": "USD",
                                         "cached": {"read": "0.3", "write": "3.75", "write_1h": "6"}})
    assert (nested.cached, nested.cache_write, nested.cache_write_1h) == (Decimal("0.3"), Decimal("3.75"), Decimal(6))
    flat = PriceConfig.model_validate({"input": "3", "output": "15", "unit": "0.000001", "currency": "USD",
                                       "cache_read": "0.3", "cache_write": "3.75"})
    assert flat.cached == Decimal("0.3") and flat.cache_write_1h is None
    counts = TokenCounts(prompt_tokens=1000, completion_tokens=10, cached_prompt_tokens=100,
                         cache_write_tokens=200, cache_write_1h_tokens=300)
    u = llm_usage(flat, counts, 0.0)  # no 1-hour price: 1-hour writes at the 5-minute write price
    assert u.prompt_price == Decimal("0.0031050")  # (400*3 + 100*0.3 + 500*3.75) / 1e6
    plain = PriceConfig.model_validate({"input": "3", "output": "15", "unit": "0.000001", "currency": "USD"})
    assert llm_usage(plain, counts, 0.0).prompt_price == Decimal("0.003")  # no cache prices: all at input
    assert (u.cache_write_tokens, u.cache_write_1h_tokens, u.cached_prompt_tokens) == (200, 300, 100)
