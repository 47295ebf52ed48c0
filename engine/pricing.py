"""Prices and usage objects, computed as Dify does (``AIModel.get_price``, ``_calc_response_usage``).

``total = tokens × unit_price × unit``, rounded half-up to 7 decimals. ``unit`` is the
multiplier per token (``0.000001`` = price per 1M tokens). A model without pricing, or an
output price that is not configured, costs zero in "USD". Money stays ``Decimal`` here; the wire
layer turns it into text with ``decimal_str``.

Plugin-era YAML adds two things Dify's plugins price by: ``tiered_pricing`` (the prompt size picks
one tier, and the whole request is billed at that tier's prices) and ``cached`` (the price of a
prompt token served from the provider's cache). Both are applied here, so a 200,000-token
qwen-flash prompt costs what the vendor charges for it, not the first tier's price. Prompt-cache
writes (Anthropic: 1.25× input for 5 minutes, 2× for 1 hour) are priced with ``cache_write`` and
``cache_write_1h`` when the model's YAML has them, so ``prompt_price`` and ``total_price`` are what
the provider bills.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Literal, NamedTuple

from engine.entities import PriceConfig, PriceTier
from engine.messages import EmbeddingUsage, LLMUsage, TokenCounts

PriceType = Literal["input", "output"]

_QUANTUM = Decimal("0.0000001")
_ZERO = Decimal("0.0")  # Dify's PriceInfo for "no price" uses Decimal("0.0")
_DEFAULT_CURRENCY = "USD"


class PriceInfo(NamedTuple):
    unit_price: Decimal
    unit: Decimal
    total_amount: Decimal
    currency: str


_NO_PRICE = PriceInfo(_ZERO, _ZERO, _ZERO, _DEFAULT_CURRENCY)


def get_price(pricing: PriceConfig | None, price_type: PriceType, tokens: int) -> PriceInfo:
    """(unit_price, unit, total, currency) for ``tokens`` tokens of ``price_type``."""
    if pricing is None:
        return _NO_PRICE
    unit_price: Decimal | None
    if price_type == "input":
        unit_price = pricing.input
    elif price_type == "output":
        unit_price = pricing.output
    else:
        raise ValueError(f"unknown price type {price_type!r}")
    if unit_price is None:
        return _NO_PRICE
    total = (tokens * unit_price * pricing.unit).quantize(_QUANTUM, rounding=ROUND_HALF_UP)
    return PriceInfo(unit_price, pricing.unit, total, pricing.currency)


def tier_for(pricing: PriceConfig | None, prompt_tokens: int) -> PriceConfig | None:
    """The prices that apply to a request with ``prompt_tokens`` prompt tokens."""
    if pricing is None or not pricing.tiered_pricing:
        return pricing
    tier: PriceTier | None = next(
        (t for t in pricing.tiered_pricing
         if prompt_tokens > t.min and (t.max is None or prompt_tokens <= t.max)), None)
    if tier is None and prompt_tokens == 0:
        tier = pricing.tiered_pricing[0]
    if tier is None:
        return pricing
    return pricing.model_copy(update={
        "input": tier.input if tier.input is not None else pricing.input,
        "output": tier.output if tier.output is not None else pricing.output,
        "cached": tier.cached if tier.cached is not None else pricing.cached,
    })


def _prompt_price(pricing: PriceConfig | None, counts: TokenCounts) -> PriceInfo:
    """Input price of the prompt; cache reads and writes at their own prices when the model has them."""
    tokens = counts.prompt_tokens
    price = get_price(pricing, "input", tokens)
    if pricing is None or price.unit_price == _ZERO:
        return price
    write_1h_price = pricing.cache_write_1h if pricing.cache_write_1h is not None else pricing.cache_write
    left = tokens
    total = Decimal(0)
    for count, unit_price in ((counts.cached_prompt_tokens, pricing.cached),
                              (counts.cache_write_tokens, pricing.cache_write),
                              (counts.cache_write_1h_tokens, write_1h_price)):
        if unit_price is None or count <= 0:
            continue
        count = min(count, left)
        left -= count
        total += count * unit_price
    if left == tokens:
        return price
    total = (total + left * pricing.input) * pricing.unit
    return price._replace(total_amount=total.quantize(_QUANTUM, rounding=ROUND_HALF_UP))


def llm_usage(pricing: PriceConfig | None, counts: TokenCounts, latency: float) -> LLMUsage:
    """Dify's ``_calc_response_usage``, with the prompt-size tier and the cache prices applied."""
    pricing = tier_for(pricing, counts.prompt_tokens)
    prompt = _prompt_price(pricing, counts)
    completion = get_price(pricing, "output", counts.completion_tokens)
    return LLMUsage(
        prompt_tokens=counts.prompt_tokens,
        prompt_unit_price=prompt.unit_price,
        prompt_price_unit=prompt.unit,
        prompt_price=prompt.total_amount,
        completion_tokens=counts.completion_tokens,
        completion_unit_price=completion.unit_price,
        completion_price_unit=completion.unit,
        completion_price=completion.total_amount,
        total_tokens=counts.prompt_tokens + counts.completion_tokens,
        total_price=prompt.total_amount + completion.total_amount,
        currency=prompt.currency,  # Dify takes the currency of the prompt price
        latency=latency,
        cached_prompt_tokens=counts.cached_prompt_tokens,
        reasoning_tokens=counts.reasoning_tokens,
        cache_write_tokens=counts.cache_write_tokens,
        cache_write_1h_tokens=counts.cache_write_1h_tokens,
    )


def embedding_usage(pricing: PriceConfig | None, tokens: int, latency: float) -> EmbeddingUsage:
    """One INPUT price lookup, ``total_tokens = tokens`` (as the embedding providers do)."""
    price = get_price(tier_for(pricing, tokens), "input", tokens)
    return EmbeddingUsage(
        tokens=tokens,
        total_tokens=tokens,
        unit_price=price.unit_price,
        price_unit=price.unit,
        total_price=price.total_amount,
        currency=price.currency,
        latency=latency,
    )


@lru_cache(maxsize=8192)  # unit prices and price units repeat on every response
def decimal_str(d: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros: 0.0000025 → "0.0000025", 0 → "0"."""
    if not d.is_finite():
        return str(d)
    if d.is_zero():
        return "0"  # also for -0 and 0E-7
    text = format(d, "f")  # never uses exponent notation; no context rounding (unlike normalize())
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
