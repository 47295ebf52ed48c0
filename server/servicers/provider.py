"""ProviderService: the catalog and credential validation."""

from __future__ import annotations

from modelruntime.v1 import provider_service_pb2 as pb
from modelruntime.v1 import provider_service_pb2_grpc as pb_grpc

from engine.runtime import ModelRuntime

from .. import convert
from ._common import Servicer, deadline, rpc


class ProviderServicer(Servicer, pb_grpc.ProviderServiceServicer):
    def __init__(self, runtime: ModelRuntime) -> None:
        super().__init__(runtime)
        self._all: pb.ListProvidersResponse | None = None

    @rpc
    async def ListProviders(self, request, context):
        kind = convert.model_type(request.model_type, required=False)
        if kind is None and self._all is not None:
            return self._all  # the catalog is static: build it once
        response = pb.ListProvidersResponse()
        for entity in self.runtime.providers(kind):
            convert.provider(entity, response.providers.add())
        if kind is None:
            self._all = response
        return response

    @rpc
    async def GetProvider(self, request, context):
        response = pb.GetProviderResponse()
        convert.provider(self.runtime.provider(request.provider), response.provider)
        return response

    @rpc
    async def ListModels(self, request, context):
        models = await self.runtime.list_models(
            request.provider, convert.model_type(request.model_type, required=False),
            convert.optional_credentials(request, self.limits),
            request.include_deprecated, deadline(context),
        )
        response = pb.ListModelsResponse()
        for m in models:
            convert.model(m, response.models.add())
        return response

    @rpc
    async def GetModel(self, request, context):
        schema = self.runtime.model_schema(
            request.provider, convert.model_type(request.model_type), request.model,
            convert.optional_credentials(request, self.limits),
        )
        response = pb.GetModelResponse()
        convert.model(schema, response.model)
        return response

    @rpc
    async def ValidateProviderCredentials(self, request, context):
        checked = await self.runtime.validate_provider_credentials(
            request.provider, convert.credentials(request, self.limits), deadline(context)
        )
        return pb.ValidateProviderCredentialsResponse(credentials=convert.dict_to_struct(checked))

    @rpc
    async def ValidateModelCredentials(self, request, context):
        checked = await self.runtime.validate_model_credentials(
            request.provider, convert.model_type(request.model_type), request.model,
            convert.credentials(request, self.limits), deadline(context),
        )
        return pb.ValidateModelCredentialsResponse(credentials=convert.dict_to_struct(checked))

    @rpc
    async def GetLoadingReport(self, request, context):
        return convert.loading_report(self.runtime.registry.report)

    @rpc
    async def ListRoutes(self, request, context):
        return convert.routes_response(self.runtime.router)
