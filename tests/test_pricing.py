"""Pricing and usage (spec §1.7)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.entities import PriceConfig
from engine.messages import TokenCounts
from engine.pricing import decimal_str, embedding_usage, get_price, llm_usage

GPT_4O = PriceConfig(input="2.50", output="10.00", unit="0.000001", currency="USD")


def test_gpt4o_1000_prompt_tokens() -> None:
    unit_price, unit, total, currency = get_price(GPT_4O, "input", 1000)
    assert unit_price == Decimal("2.50")
    assert unit == Decimal("0.000001")
    assert total == Decimal("0.0025")
    assert currency == "USD"
    assert decimal_str(total) == "0.0025"


def test_total_quantized_to_7_decimals() -> None:
    total = get_price(GPT_4O, "output", 3).total_amount
    assert total == Decimal("0.00003")
    assert total.as_tuple().exponent == -7


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("0.00000025", "0.0000003"),  # half-up (half-even would give 0.0000002)
        ("0.00000035", "0.0000004"),
        ("0.00000024999", "0.0000002"),
        ("0.00000005", "0.0000001"),
        ("0.00000004999", "0.0000000"),
    ],
)
def test_rounding_half_up_at_7th_decimal(price: str, expected: str) -> None:
    cfg = PriceConfig(input=price, unit="1", currency="USD")
    assert get_price(cfg, "input", 1).total_amount == Decimal(expected)


def test_per_1k_unit() -> None:
    cfg = PriceConfig(input="0.002", output="0.002", unit="0.001", currency="RMB")
    assert get_price(cfg, "output", 1500) == (Decimal("0.002"), Decimal("0.001"), Decimal("0.003"), "RMB")


def test_missing_output_price_is_zero_usd() -> None:
    cfg = PriceConfig(input="0.02", unit="0.000001", currency="CNY")
    unit_price, unit, total, currency = get_price(cfg, "output", 1000)
    assert (unit_price, unit, total, currency) == (Decimal(0), Decimal(0), Decimal(0), "USD")


def test_missing_pricing_is_zero_usd() -> None:
    assert get_price(None, "input", 1000) == (Decimal(0), Decimal(0), Decimal(0), "USD")
    assert get_price(None, "output", 1000) == (Decimal(0), Decimal(0), Decimal(0), "USD")


def test_unknown_price_type() -> None:
    with pytest.raises(ValueError):
        get_price(GPT_4O, "cached", 1)  # type: ignore[arg-type]


def test_llm_usage() -> None:
    counts = TokenCounts(
        prompt_tokens=1000, completion_tokens=500, cached_prompt_tokens=200, reasoning_tokens=50
    )
    u = llm_usage(GPT_4O, counts, 1.25)
    assert u.prompt_tokens == 1000 and u.completion_tokens == 500 and u.total_tokens == 1500
    assert u.prompt_unit_price == Decimal("2.50") and u.prompt_price_unit == Decimal("0.000001")
    assert u.prompt_price == Decimal("0.0025")
    assert u.completion_unit_price == Decimal("10.00") and u.completion_price_unit == Decimal("0.000001")
    assert u.completion_price == Decimal("0.005")
    assert u.total_price == Decimal("0.0075")
    assert u.currency == "USD" and u.latency == 1.25
    assert u.cached_prompt_tokens == 200 and u.reasoning_tokens == 50


def test_llm_usage_currency_from_prompt_price() -> None:
    cfg = PriceConfig(input="1", unit="0.001", currency="CNY")  # no output price → output priced in USD zeros
    u = llm_usage(cfg, TokenCounts(prompt_tokens=10, completion_tokens=10), 0.0)
    assert u.currency == "CNY"
    assert u.prompt_price == Decimal("0.01") and u.completion_price == 0 and u.total_price == Decimal("0.01")


def test_llm_usage_without_pricing() -> None:
    u = llm_usage(None, TokenCounts(prompt_tokens=7, completion_tokens=3), 0.5)
    assert u.total_tokens == 10 and u.total_price == 0 and u.currency == "USD"
    assert u.prompt_unit_price == 0 and u.completion_price_unit == 0


def test_embedding_usage() -> None:
    cfg = PriceConfig(input="0.02", unit="0.000001", currency="USD")
    u = embedding_usage(cfg, 12345, 0.3)
    assert u.tokens == 12345 and u.total_tokens == 12345
    assert u.unit_price == Decimal("0.02") and u.price_unit == Decimal("0.000001")
    assert u.total_price == Decimal("0.0002469")  # 0.00024690 exactly
    assert u.currency == "USD" and u.latency == 0.3
    assert embedding_usage(None, 5, 0.0).total_price == 0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0.0000025", "0.0000025"),
        ("0", "0"),
        ("0.0", "0"),
        ("-0", "0"),
        ("0E-7", "0"),
        ("2.50", "2.5"),
        ("10.00", "10"),
        ("1E+3", "1000"),
        ("2.5E-7", "0.00000025"),
        ("0.0025000", "0.0025"),
        ("-1.50", "-1.5"),
    ],
)
def test_decimal_str(value: str, text: str) -> None:
    assert decimal_str(Decimal(value)) == text
    assert "E" not in decimal_str(Decimal(value))
