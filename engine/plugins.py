"""Operator-added provider folders: Dify's in-tree layout and its published plugins, with a report.

Why this exists: Dify moved its providers into plugins (``langgenius/dify-official-plugins``). A
plugin keeps its provider YAML at ``provider/<file>.yaml`` (named in ``manifest.yaml`` under
``plugins.models``), lists its models through the provider YAML's own ``models:`` block
(``llm: {predefined: ["models/llm/*.yaml"], position: models/llm/_position.yaml}``) and is
published as a folder or as a ``.difypkg`` (a zip). Each ``provider_dirs`` entry may be a plugin
folder, a ``.difypkg``, or a folder holding any mix of plugins, packages and in-tree provider
folders (``<name>/<name>.yaml``). Providers are keyed by the YAML's ``provider:`` name.

Loading an operator's folders never stops on one bad file: every failure (file and reason) and
every warning goes into a :class:`LoadReport` the server logs at start-up and serves through
``ProviderService/GetLoadingReport``; the registry turns errors into a fatal start-up error only
in strict mode.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .entities import ModelType, ProviderEntity
from .loader import (
    DIFY_ONLY_MODEL_TYPES,
    ProviderDefinition,
    SchemaLoadError,
    add_models,
    drop_dify_only,
    load_provider,
    position_map,
    read_yaml,
)

PACKAGE_SUFFIXES = (".difypkg", ".zip")
LOADED, REPLACED, SKIPPED = "loaded", "replaced", "skipped"
ERROR, WARNING = "error", "warning"


@dataclass(slots=True)
class LoadProblem:
    file: str
    reason: str
    severity: str = ERROR


@dataclass(slots=True)
class ProviderLoad:
    provider: str
    status: str  # LOADED, REPLACED or SKIPPED
    source: str  # the file the provider came from
    detail: str = ""


@dataclass(slots=True)
class LoadReport:
    """What loading the ``provider_dirs`` did: one entry per provider, every problem found."""

    providers: list[ProviderLoad] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)

    def error(self, file: Path | str, reason: str) -> None:
        self.problems.append(LoadProblem(str(file), reason, ERROR))

    def warn(self, file: Path | str, reason: str) -> None:
        self.problems.append(LoadProblem(str(file), reason, WARNING))

    def skip(self, name: str, file: Path | str, reason: str) -> None:
        """A provider file that failed: an error, and the provider listed as skipped."""
        self.error(file, reason)
        self.providers.append(ProviderLoad(name, SKIPPED, str(file), reason))

    def provider(self, name: str) -> ProviderLoad | None:
        """The entry of a provider that was loaded (or replaced), if any."""
        return next((p for p in reversed(self.providers) if p.provider == name and p.status != SKIPPED), None)

    @property
    def errors(self) -> list[LoadProblem]:
        return [p for p in self.problems if p.severity == ERROR]

    def lines(self) -> list[str]:
        """The report as log lines: providers first, then problems."""
        out = [f"provider {p.provider}: {p.status} from {p.source}" + (f" ({p.detail})" if p.detail else "")
               for p in self.providers]
        out += [f"{p.severity}: {p.file}: {p.reason}" for p in self.problems]
        return out


@dataclass(slots=True)
class LoadOptions:
    """How operator folders load: ``strict`` makes any error fatal at start-up; ``overlays``
    gives a provider (by name) ``runtime:`` options laid over its YAML's; ``notes`` are
    configuration warnings to carry in the report (an empty ``provider_dirs:`` key)."""

    strict: bool = False
    overlays: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_root(root: Path, report: LoadReport) -> list[tuple[ProviderDefinition, Path]]:
    """Every provider under one ``provider_dirs`` entry, each with the file it came from."""
    if not root.exists():
        report.error(root, "provider_dirs entry does not exist")
        return []
    if root.is_file():
        if root.suffix in PACKAGE_SUFFIXES:
            return load_package(root, report)
        report.error(root, "provider_dirs entry is a file but not a .difypkg plugin package")
        return []
    if (root / "manifest.yaml").is_file():
        return load_plugin(root, report)
    found: list[tuple[ProviderDefinition, Path]] = []
    order = position_map(root / "_position.yaml")
    children = sorted(root.iterdir(), key=lambda c: (order.get(c.name, len(order)), c.name))
    for child in children:
        if child.name.startswith(("_", ".")):
            continue
        if child.is_file() and child.suffix in PACKAGE_SUFFIXES:
            found += load_package(child, report)
        elif child.is_dir() and (child / "manifest.yaml").is_file():
            found += load_plugin(child, report)
        elif child.is_dir() and (child / f"{child.name}.yaml").is_file():
            found += _in_tree(child, report)
        elif child.is_dir():
            report.warn(child, f"skipped: neither a plugin (no manifest.yaml) nor a provider folder "
                               f"(no {child.name}.yaml)")
    if not found and not any(p.file.startswith(str(root)) for p in report.problems):
        report.error(root, "no plugin, plugin package or provider folder found here")
    return found


def _in_tree(folder: Path, report: LoadReport) -> list[tuple[ProviderDefinition, Path]]:
    path = folder / f"{folder.name}.yaml"
    try:
        return [(load_provider(folder, report.error, report.warn), path)]
    except SchemaLoadError as exc:
        report.skip(folder.name, path, _reason(exc, path))
        return []


def load_package(package: Path, report: LoadReport) -> list[tuple[ProviderDefinition, Path]]:
    """A ``.difypkg`` (zip) unpacked to a private folder that lives as long as the process."""
    target = Path(tempfile.mkdtemp(prefix=f"difypkg-{package.stem}-"))
    atexit.register(shutil.rmtree, target, True)
    try:
        with zipfile.ZipFile(package) as archive:
            for member in archive.namelist():
                if not (target / member).resolve().is_relative_to(target.resolve()):
                    report.error(package, f"unsafe path in package: {member}")
                    return []
            archive.extractall(target)
    except (OSError, zipfile.BadZipFile) as exc:
        report.error(package, f"not a readable plugin package: {exc}")
        return []
    if not (target / "manifest.yaml").is_file():
        report.error(package, "package has no manifest.yaml at its top level")
        return []
    return [(d, _as_packaged(package, target, src)) for d, src in load_plugin(target, report, package)]


def _as_packaged(package: Path, unpacked: Path, file: Path) -> Path:
    return package / file.relative_to(unpacked)


def load_plugin(folder: Path, report: LoadReport,
                package: Path | None = None) -> list[tuple[ProviderDefinition, Path]]:
    """The model providers a plugin's ``manifest.yaml`` declares (``plugins.models``)."""
    def shown(path: Path) -> Path:  # a file inside a package is named inside the package
        return _as_packaged(package, folder, path) if package else path

    manifest_path = folder / "manifest.yaml"
    try:
        manifest = read_yaml(manifest_path)
    except SchemaLoadError as exc:
        report.error(shown(manifest_path), _reason(exc, manifest_path))
        return []
    if not isinstance(manifest, dict):
        report.error(shown(manifest_path), "expected a mapping")
        return []
    plugins = manifest.get("plugins") if isinstance(manifest.get("plugins"), dict) else {}
    declared = plugins.get("models") if plugins else None
    if declared is None:
        if plugins:
            report.warn(shown(manifest_path), "not a model plugin (no plugins.models): skipped")
            return []
        declared = [str(p.relative_to(folder)) for p in sorted((folder / "provider").glob("*.yaml"))]
    found = []
    for rel in declared if isinstance(declared, list) else []:
        path = folder / str(rel)
        if not path.is_file():
            report.error(shown(manifest_path), f"plugins.models names {rel}, which does not exist")
            continue
        definition = _plugin_provider(folder, path, report, shown)
        if definition is not None:
            found.append((definition, path))
    if not found and not declared:
        report.error(shown(manifest_path), "the plugin declares no provider file")
    return found


def _plugin_provider(folder: Path, path: Path, report: LoadReport, shown: Any) -> ProviderDefinition | None:
    def error(file: Path, reason: str) -> None:
        report.error(shown(file), reason)

    def warn(file: Path, reason: str) -> None:
        report.warn(shown(file), reason)

    raw: Any = None
    try:
        raw = read_yaml(path)
        if not isinstance(raw, dict):
            raise SchemaLoadError(f"{path}: expected a mapping")
        raw = drop_dify_only(raw, "supported_model_types", DIFY_ONLY_MODEL_TYPES, path, warn)
        entity = ProviderEntity.model_validate(raw)
    except SchemaLoadError as exc:
        report.skip(_name_in(raw, path), shown(path), _reason(exc, path))
        return None
    except ValueError as exc:  # pydantic ValidationError
        report.skip(_name_in(raw, path), shown(path), str(exc))
        return None
    schema = ProviderDefinition(entity=entity, folder=folder)
    blocks = raw.get("models") if isinstance(raw.get("models"), dict) else None
    positions = raw.get("position") if isinstance(raw.get("position"), dict) else {}
    for model_type in entity.supported_model_types:
        files, order = _model_files(folder, path, model_type, blocks, positions, error)
        add_models(schema, model_type, files, order, error, warn)
    return schema


def _model_files(folder: Path, path: Path, model_type: ModelType, blocks: dict | None, positions: dict,
                 error: Any) -> tuple[list[Path], dict[str, int]]:
    """The files of one model type named by the provider YAML's ``models:`` globs (Dify's
    ``models/<type>/*.yaml`` when the YAML has no ``models:`` block) and their order."""
    if blocks is None:
        type_dir = folder / "models" / model_type.folder
        block: Any = {"predefined": [f"models/{model_type.folder}/*.yaml"],
                      "position": f"models/{model_type.folder}/_position.yaml"}
    else:
        block = blocks.get(model_type.folder) or blocks.get(model_type.value) or {}
    if not isinstance(block, dict):
        error(path, f"models.{model_type.folder}: expected a mapping")
        return [], {}
    files: list[Path] = []
    for pattern in block.get("predefined") or []:
        matched = [p for p in folder.glob(str(pattern)) if p.is_file() and not p.name.startswith("_")]
        files += matched
    order: dict[str, int] = {}
    if block.get("position"):
        type_dir = folder / str(block["position"])
        try:
            order = position_map(type_dir)
        except SchemaLoadError as exc:
            error(type_dir, _reason(exc, type_dir))
    elif isinstance(positions.get(model_type.folder), list):  # the SDK's provider-level position block
        order = {str(n): i for i, n in enumerate(positions[model_type.folder])}
    return files, order


def _name_in(raw: object, path: Path) -> str:
    """The provider name a file gives, or its file name when it gives none."""
    name = raw.get("provider") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and name else path.stem


def _reason(exc: Exception, path: Path) -> str:
    return str(exc).removeprefix(f"{path}: ")
