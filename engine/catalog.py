"""The read side of the runtime: providers, models, schemas, and credential validation.

It also holds the observer hook (:mod:`.observe`) both sides share: credential checks and remote
model listings reach the upstream too, so they are observed like model calls, under the runtime's
own operation names.
"""

from __future__ import annotations

import time
from typing import Any

from .adapter import CallContext
from .credentials import mask_secrets, validate_credentials
from .entities import AIModelEntity, ConfigurateMethod, FormType, ModelType, ProviderEntity
from .errors import CredentialsValidateFailedError, FieldViolation, NotFoundError, RuntimeFault
from .observe import LIST_MODELS, VALIDATE_CREDENTIALS, CallRecord, Observer, current_call
from .registry import Registry


class Catalog:
    def __init__(self, registry: Registry, egress: Any) -> None:
        self.registry = registry
        self.egress = egress
        self._secret_vars: dict[str, set[str]] = {}
        self.observer: Observer | None = None  # server/observability sets it; None costs nothing

    def secrets(self, provider: str, credentials: dict | None) -> list[str]:
        """The values of the caller's secret credential fields (to scrub from any text)."""
        if not credentials:
            return []
        names = self._secret_vars.get(provider)
        if names is None:
            names = self._secret_vars[provider] = _secret_variables(self.registry.definitions.get(provider))
        return [str(credentials[n]) for n in names if credentials.get(n)]

    def fault(self, exc: RuntimeFault, provider: str, model: str, credentials: dict | None) -> RuntimeFault:
        """Finish an error on its way out: name the target, scrub the caller's secrets."""
        exc.with_target(provider, model)
        secrets = self.secrets(provider, credentials)
        if secrets:
            exc.scrub(secrets)
        return exc

    # ---- observation ------------------------------------------------------------------

    def _observe(self, provider: str, model: str, model_type: ModelType, credentials: dict | None,
                 stream: bool = False, operation: str = "") -> CallRecord | None:
        observer = self.observer
        if observer is None:
            return None
        record = CallRecord(provider, model, model_type, stream, operation)
        if observer.capture_content:
            record.capture = True
            record.secrets = self.secrets(provider, credentials)
        observer.call_started(record)
        current_call.set(record)
        return record

    def _observed(self, record: CallRecord) -> None:
        record.duration = time.perf_counter() - record.started
        current_call.set(None)
        if self.observer is not None:
            self.observer.call_ended(record)

    async def _observing(self, operation: str, provider: str, model: str, model_type: ModelType,
                         credentials: dict, call: Any) -> Any:
        """Await ``call`` as an observed non-model call (it may reach the upstream)."""
        record = self._observe(provider, model, model_type, credentials, operation=operation)
        if record is None:
            return await call
        try:
            result = await call
            record.succeeded()
            return result
        except Exception as exc:
            record.failed(exc)
            raise
        finally:
            self._observed(record)

    def providers(self, model_type: ModelType | None = None) -> list[ProviderEntity]:
        return [self.registry.definitions[n].entity for n in self.registry.provider_names(model_type)]

    def provider(self, name: str) -> ProviderEntity:
        return self.registry.definition(name).entity

    def _context(self, provider: str, model: str, model_type: ModelType, credentials: dict,
                 schema: AIModelEntity | None, deadline: float | None = None) -> CallContext:
        adapter = self.registry.adapter(provider)
        return CallContext(
            provider_entity=adapter.entity, model=model, model_type=model_type, schema=schema,
            credentials=credentials, http=scoped_http(self.egress, model_type), deadline=deadline,
            options=adapter.serving(model_type).options,
        )

    async def list_models(
        self, provider: str, model_type: ModelType | None = None, credentials: dict | None = None,
        include_deprecated: bool = False, deadline: float | None = None,
    ) -> list[AIModelEntity]:
        schema = self.registry.definition(provider)
        types = [model_type] if model_type else list(schema.entity.supported_model_types)
        models: list[AIModelEntity] = []
        for t in types:
            models.extend(m for m in schema.models.get(t, []) if include_deprecated or not m.deprecated)
        if credentials:
            adapter = self.registry.adapter(provider)
            entity = adapter.entity
            form = entity.provider_credential_schema or (
                entity.model_credential_schema if entity.model_credential_schema else None
            )
            known = {(m.model_type, m.model) for m in models}
            for t in types:
                checked = validate_credentials(
                    form.credential_form_schemas, credentials,
                    model_type=None if entity.provider_credential_schema else t.value,
                ) if form else {}
                ctx = self._context(provider, "", t, checked, None, deadline)
                try:
                    remote = await self._observing(LIST_MODELS, provider, "", t, credentials,
                                                   adapter.list_remote_models(ctx, t))
                except RuntimeFault as exc:
                    raise self.fault(exc, provider, "", credentials) from None
                models.extend(m for m in remote if (m.model_type, m.model) not in known)
        return models

    def model_schema(
        self, provider: str, model_type: ModelType, model: str, credentials: dict | None = None
    ) -> AIModelEntity:
        schema_set = self.registry.definition(provider)
        found = schema_set.predefined(model_type, model)
        if found is not None:
            return found
        entity = schema_set.entity
        if ConfigurateMethod.CUSTOMIZABLE_MODEL in entity.configurate_methods and entity.model_credential_schema:
            if not credentials:
                raise NotFoundError(
                    f"'{model}' is not a predefined model; pass its credentials to build a customizable schema",
                    provider=provider, model=model,
                    field_violations=(FieldViolation("credentials", "required for customizable models"),),
                )
            checked = validate_credentials(
                entity.model_credential_schema.credential_form_schemas, credentials, model_type=model_type.value
            )
            built = self.registry.adapter(provider).customizable_schema(model, model_type, checked)
            if built is not None:
                return built
        raise NotFoundError(f"Unknown {model_type.value} model '{model}' for provider '{provider}'",
                            provider=provider, model=model)

    async def validate_provider_credentials(self, provider: str, credentials: dict,
                                            deadline: float | None = None) -> dict:
        adapter = self.registry.adapter(provider)
        form = adapter.entity.provider_credential_schema
        if form is None:
            raise CredentialsValidateFailedError(
                f"Provider '{provider}' has no provider credentials (its models are customizable)",
                provider=provider,
            )
        checked = validate_credentials(form.credential_form_schemas, credentials)
        ctx = self._context(provider, "", ModelType.LLM, checked, None, deadline)
        try:
            await self._observing(VALIDATE_CREDENTIALS, provider, "", ModelType.LLM, credentials,
                                  _as_validation(adapter.validate_provider_credentials(ctx), provider, ""))
        except RuntimeFault as exc:
            raise self.fault(exc, provider, "", credentials) from None
        return mask_secrets(form.credential_form_schemas, checked)

    async def validate_model_credentials(self, provider: str, model_type: ModelType, model: str,
                                         credentials: dict, deadline: float | None = None) -> dict:
        adapter = self.registry.adapter(provider)
        form = adapter.entity.model_credential_schema
        if form is None:
            raise CredentialsValidateFailedError(
                f"Provider '{provider}' has no model credentials", provider=provider, model=model
            )
        checked = validate_credentials(form.credential_form_schemas, credentials, model_type=model_type.value)
        schema = self.registry.definition(provider).predefined(model_type, model) or adapter.customizable_schema(
            model, model_type, checked
        )
        ctx = self._context(provider, model, model_type, checked, schema, deadline)
        try:
            await self._observing(VALIDATE_CREDENTIALS, provider, model, model_type, credentials,
                                  _as_validation(adapter.serving(model_type).validate_model_credentials(ctx),
                                                 provider, model))
        except RuntimeFault as exc:
            raise self.fault(exc, provider, model, credentials) from None
        return mask_secrets(form.credential_form_schemas, checked)


def scoped_http(egress: Any, model_type: ModelType) -> Any:
    """The egress with the reply caps of this model type (audio replies may be larger)."""
    scoped = getattr(egress, "scoped", None)
    return scoped(model_type) if scoped is not None else egress


def _secret_variables(schema: Any) -> set[str]:
    if schema is None:
        return set()
    entity = schema.entity
    forms = [f for f in (entity.provider_credential_schema, entity.model_credential_schema) if f]
    return {field.variable for form in forms for field in form.credential_form_schemas
            if field.type is FormType.SECRET_INPUT}


async def _as_validation(awaitable: Any, provider: str, model: str) -> None:
    """Any failure of the check call is a credentials failure (Dify's contract)."""
    try:
        await awaitable
    except CredentialsValidateFailedError as exc:
        raise exc.with_target(provider, model) from None
    except RuntimeFault as exc:
        raise CredentialsValidateFailedError(
            str(exc), provider=provider, model=model, field_violations=exc.field_violations,
            upstream_status=exc.upstream_status,
        ) from None
