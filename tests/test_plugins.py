"""Dify plugin folders and packages through provider_dirs (issue 16), end to end over gRPC.

Fixtures are built at test time from the runtime's own YAML (tests/plugin_fixtures.py); calls go
to the local OpenAI mock. Each failure kind the issue lists has its own test.
"""

from __future__ import annotations

import contextlib
import shutil
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
import yaml
from modelruntime.v1 import common_pb2, provider_service_pb2_grpc
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as pb

from engine.entities import PriceConfig
from engine.messages import TokenCounts
from engine.pricing import llm_usage
from engine.registry import DefinitionsError
from providers import DEFINITIONS
from server.app import start_server
from server.config import Config, PluginsConfig
from tests.conftest import Stubs, make_config
from tests.helpers import struct, target, user
from tests.mocks.openai_common import ModelInfo
from tests.mocks.openai_mock import OpenAIMock
from tests.plugin_fixtures import make_plugin, package

KEY = "sk-test"
LLM = common_pb2.MODEL_TYPE_LLM
ERROR, WARNING = pb.LOAD_PROBLEM_SEVERITY_ERROR, pb.LOAD_PROBLEM_SEVERITY_WARNING


@contextlib.asynccontextmanager
async def serving(config: Config):
    running = await start_server(config)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Stubs(channel)
    finally:
        await channel.close()
        await running.stop(0, 0)


@pytest.fixture
async def mock():
    async with OpenAIMock(api_keys=[KEY], extra_models=[ModelInfo("deepseek-v4-flash", "chat")]) as m:
        yield m


async def report(stubs: Stubs) -> pb.GetLoadingReportResponse:
    return await stubs.providers.GetLoadingReport(pb.GetLoadingReportRequest())


def entry(rep: pb.GetLoadingReportResponse, name: str) -> pb.ProviderLoad:
    return next(p for p in rep.providers if p.provider == name)


async def chat(stubs: Stubs, provider: str, credentials: dict) -> llm_pb.GenerateResponse:
    return await stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target(provider, "deepseek-v4-flash", credentials), messages=[user("hello")],
        model_parameters=struct({"max_tokens": 16})))


# ---- packaging: a plugin folder, a folder of plugins, a .difypkg --------------------------------------


async def test_published_folder_over_a_builtin_keeps_its_runtime_options(tmp_path, mock):
    """deepseek as published (no runtime: block) replaces the built-in, stays callable, and says so."""
    plugin = make_plugin(tmp_path / "deepseek", "deepseek")
    async with serving(make_config(provider_dirs=[str(plugin)])) as stubs:
        rep = await report(stubs)
        e = entry(rep, "deepseek")
        assert e.status == pb.PROVIDER_LOAD_STATUS_REPLACED and e.source == str(plugin / "provider/deepseek.yaml")
        assert "kept the runtime's own runtime: options" in e.detail and "built-in" in e.detail
        models = await stubs.providers.ListModels(pb.ListModelsRequest(provider="deepseek"))
        order = yaml.safe_load((DEFINITIONS / "deepseek/llm/_position.yaml").read_text())
        assert [m.name for m in models.models] == order  # the plugin's position file
        reply = await chat(stubs, "deepseek", {"api_key": KEY, "endpoint_url": mock.base_url})
        assert reply.message.content == mock.expected_reply("hello")


async def test_folder_of_plugins_and_a_difypkg_keyed_by_the_yaml_provider_name(tmp_path):
    root = tmp_path / "plugins"
    # Folder and provider file both named unlike the provider (gemini/provider/google.yaml).
    make_plugin(root / "some_folder", "jina", provider="jina_plugin", file_name="other_name")
    built = make_plugin(tmp_path / "build" / "voyage", "voyage", provider="voyage_pkg")
    package(built, root / "voyage_pkg-0.0.1.difypkg")
    async with serving(make_config(provider_dirs=[str(root)])) as stubs:
        rep = await report(stubs)
        assert entry(rep, "jina_plugin").status == pb.PROVIDER_LOAD_STATUS_LOADED
        packaged = entry(rep, "voyage_pkg")
        assert packaged.status == pb.PROVIDER_LOAD_STATUS_LOADED
        assert packaged.source == str(root / "voyage_pkg-0.0.1.difypkg" / "provider/voyage_pkg.yaml")
        names = [p.name for p in (await stubs.providers.ListProviders(pb.ListProvidersRequest())).providers]
        assert {"jina_plugin", "voyage_pkg", "jina", "voyage"} <= set(names)
        jina = sum(1 for p in (DEFINITIONS / "jina").rglob("*.yaml") if not p.name.startswith("_")) - 1
        listed = await stubs.providers.ListModels(pb.ListModelsRequest(provider="jina_plugin",
                                                                       include_deprecated=True))
        assert len(listed.models) == jina  # every model file found through the models: globs
        # Catalog-only (no runtime options): listed, with a warning telling how to make it callable.
        assert any("plugins.overlays.jina_plugin" in p.reason and p.severity == WARNING for p in rep.problems)


async def test_a_difypkg_given_directly(tmp_path):
    pkg = package(make_plugin(tmp_path / "b", "deepseek", provider="ds2"), tmp_path / "ds2.difypkg")
    async with serving(make_config(provider_dirs=[str(pkg)])) as stubs:
        got = await stubs.providers.GetModel(pb.GetModelRequest(provider="ds2", model="deepseek-v4-flash",
                                                                model_type=LLM))
        assert got.model.name == "deepseek-v4-flash"


async def test_overlay_makes_an_unknown_vendor_callable(tmp_path, mock):
    plugin = make_plugin(tmp_path / "acme", "deepseek", provider="acme")
    overlay = {"acme": {"protocol": "openai", "base_url": mock.base_url, "api_key_credential": "api_key"}}
    config = make_config(provider_dirs=[str(plugin)], plugins=PluginsConfig(overlays=overlay))
    async with serving(config) as stubs:
        e = entry(await report(stubs), "acme")
        assert e.status == pb.PROVIDER_LOAD_STATUS_LOADED and "plugins.overlays" in e.detail
        reply = await chat(stubs, "acme", {"api_key": KEY})
        assert reply.message.content == mock.expected_reply("hello")
        assert mock.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_overlay_options_are_checked_and_reported(tmp_path):
    plugin = make_plugin(tmp_path / "acme", "deepseek", provider="acme")
    overlays = {"acme": {"protocol": "openai", "base_urll": "http://x"}, "ghost": {"protocol": "openai"}}
    async with serving(make_config(provider_dirs=[str(plugin)], plugins=PluginsConfig(overlays=overlays))) as stubs:
        reasons = [p.reason for p in (await report(stubs)).problems if p.severity == ERROR]
        assert any("base_urll" in r for r in reasons) and any("ghost" in r for r in reasons)


# ---- data the plugin YAML carries ------------------------------------------------------------------


def _with_help(raw: dict) -> None:
    fields = raw["model_credential_schema"]["credential_form_schemas"]
    fields[0]["help"] = {"en_US": "Where to find it", "zh_Hans": "在哪里找到"}
    raw["model_credential_schema"]["model"]["help"] = {"en_US": "The model id"}


def _rule_extras(model: dict) -> None:
    model["parameter_rules"].append({"name": "enable_thinking", "type": "boolean", "label": {"en_US": "Think"},
                                     "show_on": [{"variable": "mode", "value": "chat"}],
                                     "placeholder": {"en_US": "off"}})
    model["parameter_rules"].append({"name": "prefix", "use_template": "encouraged_response_prefix"})
    model["pricing"] = {"input": "0.00015", "output": "0.0015", "unit": "0.001", "currency": "RMB",
                        "cached": "0.00003",
                        "tiered_pricing": [{"min": 0, "max": 5, "input": "0.00015"},
                                           {"range": [5, 128000], "input": "0.0006", "output": "0.006"}]}


async def test_help_show_on_placeholder_template_and_pricing_reach_the_contract(tmp_path, mock):
    plugin = make_plugin(tmp_path / "compat", "openai_api_compatible", provider="compat", edit_provider=_with_help)
    flash = make_plugin(tmp_path / "ds", "deepseek", provider="ds",
                        edit_models={"deepseek-v4-flash": _rule_extras})
    overlay = {"ds": {"protocol": "openai", "base_url": mock.base_url, "api_key_credential": "api_key"}}
    config = make_config(provider_dirs=[str(plugin), str(flash)], plugins=PluginsConfig(overlays=overlay))
    async with serving(config) as stubs:
        p = (await stubs.providers.GetProvider(pb.GetProviderRequest(provider="compat"))).provider
        assert p.model_credential_fields[0].help.en_us == "Where to find it"
        assert p.model_name_help.en_us == "The model id"
        m = (await stubs.providers.GetModel(pb.GetModelRequest(provider="ds", model="deepseek-v4-flash",
                                                               model_type=LLM))).model
        rules = {r.name: r for r in m.parameter_rules}
        assert rules["enable_thinking"].show_on[0].variable == "mode"
        assert rules["enable_thinking"].placeholder.en_us == "off"
        assert rules["prefix"].label.en_us == "Encouraged response prefix"
        assert rules["prefix"].label.zh_hans == "引导回复前缀"
        assert m.pricing.cached == "0.00003" and len(m.pricing.tiers) == 2
        assert m.pricing.tiers[1].min_prompt_tokens == 5 and m.pricing.tiers[1].max_prompt_tokens == 128000
        # The mock's prompt is over 5 tokens: the second tier prices the whole call.
        usage = (await chat(stubs, "ds", {"api_key": KEY})).usage
        assert usage.prompt_tokens > 5
        assert usage.prompt_unit_price == "0.0006" and usage.completion_unit_price == "0.006"


def test_tiered_pricing_by_prompt_size_as_the_issue_tells_it():
    """200,000 prompt tokens of qwen-flash: 0.12 RMB at the 128K-256K tier, not 0.03 at the first."""
    pricing = PriceConfig.model_validate({
        "input": "0.00015", "output": "0.0015", "unit": "0.001", "currency": "RMB",
        "tiered_pricing": [{"min": 0, "max": 128000, "input": "0.00015", "output": "0.0015"},
                           {"min": 128000, "max": 256000, "input": "0.0006", "output": "0.006"},
                           {"min": 256000, "max": 1000000, "input": "0.0012", "output": "0.012"}]})
    usage = llm_usage(pricing, TokenCounts(prompt_tokens=200_000, completion_tokens=0), 0.0)
    assert usage.prompt_price == Decimal("0.12") and usage.prompt_unit_price == Decimal("0.0006")
    small = llm_usage(pricing, TokenCounts(prompt_tokens=1000, completion_tokens=10), 0.0)
    assert small.prompt_price == Decimal("0.00015") and small.completion_unit_price == Decimal("0.0015")


def test_cached_prompt_tokens_priced_at_the_cached_price():
    pricing = PriceConfig.model_validate({"input": "2.5", "output": "10", "unit": "0.000001", "currency": "USD",
                                          "cached": "1.25"})
    usage = llm_usage(pricing, TokenCounts(prompt_tokens=1000, completion_tokens=0, cached_prompt_tokens=400), 0.0)
    assert usage.prompt_price == Decimal("0.002")  # 600 × 2.5 + 400 × 1.25, per 1M
    plain = PriceConfig.model_validate({"input": "2.5", "unit": "0.000001", "currency": "USD"})
    assert llm_usage(plain, TokenCounts(1000, 0, cached_prompt_tokens=400), 0.0).prompt_price == Decimal("0.0025")


# ---- each failure kind: reported, the server still starts; strict mode makes it fatal ----------------


def _polling(model: dict) -> None:
    model["features"] = [*(model.get("features") or []), "polling"]


def _broken_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    # unknown-but-Dify-accepted feature value: a warning, the model still loads
    make_plugin(root / "ds_polling", "deepseek", provider="ds_polling",
                edit_models={"deepseek-v4-flash": _polling})
    # a stray non-model YAML and an unreadable one in a model folder: errors, siblings still load
    stray = make_plugin(root / "ds_stray", "deepseek", provider="ds_stray")
    (stray / "models/llm/notes.yaml").write_text("comment: not a model\n")
    (stray / "models/llm/broken.yaml").write_text("model: [unclosed\n")
    # an in-tree folder whose provider file names another provider: skipped, named
    legacy = root / "maas_hk"
    shutil.copytree(DEFINITIONS / "jina", legacy)
    (legacy / "jina.yaml").rename(legacy / "maas_hk.yaml")
    # a provider file that is not a provider: skipped, named
    bad = make_plugin(root / "bad_provider", "deepseek", provider="bad_provider")
    (bad / "provider/bad_provider.yaml").write_text("provider: bad_provider\nlabel: {en_US: x}\n")
    return root


async def test_every_failure_is_reported_and_the_server_still_serves(tmp_path):
    root = _broken_root(tmp_path)
    missing = tmp_path / "does-not-exist"
    async with serving(make_config(provider_dirs=[str(root), str(missing)])) as stubs:
        rep = await report(stubs)
        problems = {(p.file, p.severity): p.reason for p in rep.problems}
        flash = root / "ds_polling/models/llm/deepseek-v4-flash.yaml"
        assert "'polling'" in problems[(str(flash), WARNING)]
        assert "model" in problems[(str(root / "ds_stray/models/llm/notes.yaml"), ERROR)]
        assert "invalid YAML" in problems[(str(root / "ds_stray/models/llm/broken.yaml"), ERROR)]
        assert "must equal its folder name" in problems[(str(root / "maas_hk/maas_hk.yaml"), ERROR)]
        assert "supported_model_types" in problems[(str(root / "bad_provider/provider/bad_provider.yaml"), ERROR)]
        assert "does not exist" in problems[(str(missing), ERROR)]
        assert entry(rep, "maas_hk").status == pb.PROVIDER_LOAD_STATUS_SKIPPED
        assert entry(rep, "bad_provider").status == pb.PROVIDER_LOAD_STATUS_SKIPPED
        assert entry(rep, "ds_stray").status == pb.PROVIDER_LOAD_STATUS_LOADED
        got = await stubs.providers.GetModel(pb.GetModelRequest(provider="ds_polling", model="deepseek-v4-flash",
                                                                model_type=LLM))
        assert got.model.name == "deepseek-v4-flash"
        listed = await stubs.providers.ListModels(pb.ListModelsRequest(provider="ds_stray"))
        assert len(listed.models) == 3


async def test_strict_mode_makes_every_problem_fatal_at_start(tmp_path):
    root = _broken_root(tmp_path)
    config = make_config(provider_dirs=[str(root), str(tmp_path / "nope")], plugins=PluginsConfig(strict=True))
    with pytest.raises(DefinitionsError) as raised:
        await start_server(config)
    text = str(raised.value)
    for part in ("notes.yaml", "broken.yaml", "maas_hk.yaml", "bad_provider.yaml", "nope"):
        assert part in text  # all of them, not the first


async def test_empty_provider_dirs_key_is_named_not_a_crash():
    config = Config.model_validate({**make_config().model_dump(), "provider_dirs": None})
    async with serving(config) as stubs:
        rep = await report(stubs)
        assert rep.problems[0].file == "config" and "'provider_dirs' is empty" in rep.problems[0].reason
        assert rep.problems[0].severity == WARNING


async def test_a_file_that_is_not_a_package_and_an_empty_folder(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    (tmp_path / "empty").mkdir()
    async with serving(make_config(provider_dirs=[str(tmp_path / "x.txt"), str(tmp_path / "empty")])) as stubs:
        reasons = {p.file: p.reason for p in (await report(stubs)).problems}
        assert "not a .difypkg" in reasons[str(tmp_path / "x.txt")]
        assert "no plugin" in reasons[str(tmp_path / "empty")]


async def test_report_rpc_on_the_default_server_is_empty(stubs):
    rep = await provider_service_pb2_grpc.ProviderServiceStub(stubs.channel).GetLoadingReport(
        pb.GetLoadingReportRequest())
    assert list(rep.providers) == [] and list(rep.problems) == []
