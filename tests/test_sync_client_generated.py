"""The sync client (_sync.py) is generated from the async one and must be kept in step with it.

Like the stub drift check for the protos: edit ``_async.py``, run ``make sync-client``
(``python scripts/gen_sync_client.py``), commit both.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import modelruntime
import pytest
from modelruntime import _async, _sync

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_sync_client.py"


def _script():
    spec = importlib.util.spec_from_file_location("gen_sync_client", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_sync_client_is_up_to_date():
    module = _script()
    current = module.TARGET.read_text(encoding="utf-8")
    assert current == module.render(), "_sync.py is stale: run `make sync-client`"
    assert module.main(["--check"]) == 0
    assert current.startswith("# GENERATED from _async.py"), "_sync.py lost its do-not-edit header"


def test_check_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    module = _script()
    stale = tmp_path / "_sync.py"
    stale.write_text(module.render() + "# hand edit\n", encoding="utf-8")
    monkeypatch.setattr(module, "TARGET", stale)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    assert module.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().out
    assert module.main([]) == 0
    assert module.main(["--check"]) == 0


@pytest.mark.parametrize("index", range(len(_script().SPECIAL)))
def test_a_moved_special_case_fails_loudly(index):
    module = _script()
    source = module.SOURCE.read_text(encoding="utf-8")
    old, _ = module.SPECIAL[index]
    with pytest.raises(module.GenerationError, match="exactly one"):
        module.rewrite(source.replace(old, old.swapcase()))


def test_asyncio_left_in_the_output_fails_loudly():
    module = _script()
    source = module.SOURCE.read_text(encoding="utf-8")
    with pytest.raises(module.GenerationError, match="still says"):
        module.rewrite(source + "\n\nasyncio.sleep\n")


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and (not name.startswith("_") or name in ("__init__",))
    }


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"),
    [
        (_sync.Providers, _async.AsyncProviders),
        (_sync.LLM, _async.AsyncLLM),
        (_sync.TextEmbedding, _async.AsyncTextEmbedding),
        (_sync.Rerank, _async.AsyncRerank),
        (_sync.Speech2Text, _async.AsyncSpeech2Text),
        (_sync.Moderation, _async.AsyncModeration),
        (_sync.TTS, _async.AsyncTTS),
    ],
)
def test_resources_take_the_same_arguments(sync_cls, async_cls):
    sync_methods, async_methods = _public_methods(sync_cls), _public_methods(async_cls)
    assert sync_methods.keys() == async_methods.keys()
    for name, signature in sync_methods.items():
        assert list(signature.parameters) == list(async_methods[name].parameters), name
        for param, sync_param in signature.parameters.items():
            assert sync_param.default == async_methods[name].parameters[param].default, (name, param)
        assert inspect.iscoroutinefunction(getattr(sync_cls, name)) is False, name


def test_the_clients_expose_the_same_resources():
    def properties(cls: type) -> set[str]:
        return {name for name, member in vars(cls).items() if isinstance(member, property)}

    assert properties(modelruntime.ModelRuntimeClient) == properties(modelruntime.AsyncModelRuntimeClient)


def test_sync_admin_client_is_up_to_date():
    module = _script()
    current = module.ADMIN_TARGET.read_text(encoding="utf-8")
    assert current == module.render_admin(), "_admin_sync.py is stale: run `make sync-client`"
    assert current.startswith("# GENERATED from admin.py")
    from modelruntime.admin import AdminClient, AsyncAdminClient

    for name, method in inspect.getmembers(AsyncAdminClient, inspect.isfunction):
        if not name.startswith(("__a", "__init__")):  # __init__ differs in its channel type only
            assert inspect.signature(getattr(AdminClient, name)) == inspect.signature(method), name
