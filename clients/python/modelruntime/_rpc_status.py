"""Decoding of ``grpc-status-details-bin`` without googleapis-common-protos.

A failed RPC from the runtime carries a serialized ``google.rpc.Status`` in
its trailing metadata under ``grpc-status-details-bin``; its ``details`` are
``google.protobuf.Any`` messages packing ``google.rpc.ErrorInfo``,
``RetryInfo``, ``BadRequest`` and ``ResourceInfo``.

The client may depend only on ``grpcio`` and ``protobuf``, so the few
``google.rpc`` messages it needs are described here in code (field numbers as
in googleapis' ``google/rpc/status.proto`` and ``google/rpc/error_details.proto``)
and built in a *private* :class:`~google.protobuf.descriptor_pool.DescriptorPool`.
Nothing is added to the default pool, so importing ``google.rpc.status_pb2``
(googleapis-common-protos) in the same process never conflicts with this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, duration_pb2, message_factory
from google.protobuf.message import DecodeError, Message

__all__ = [
    "STATUS_DETAILS_KEY",
    "DecodedStatus",
    "FieldViolation",
    "ResourceInfo",
    "decode_status",
    "message_class",
    "status_details_from_metadata",
]

STATUS_DETAILS_KEY = "grpc-status-details-bin"
_TYPE_URL_PREFIX = "type.googleapis.com/"

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL = _F.LABEL_OPTIONAL
_REPEATED = _F.LABEL_REPEATED


def _field(
    msg: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    ftype: int,
    *,
    label: int = _OPTIONAL,
    type_name: str = "",
    json_name: str = "",
) -> None:
    f = msg.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name
    if json_name:
        f.json_name = json_name


def _status_file() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="google/rpc/status.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    status = fdp.message_type.add(name="Status")
    _field(status, "code", 1, _F.TYPE_INT32)
    _field(status, "message", 2, _F.TYPE_STRING)
    _field(status, "details", 3, _F.TYPE_MESSAGE, label=_REPEATED, type_name=".google.protobuf.Any")
    return fdp


def _error_details_file() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="google/rpc/error_details.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/duration.proto"],
    )

    # message ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
    error_info = fdp.message_type.add(name="ErrorInfo")
    _field(error_info, "reason", 1, _F.TYPE_STRING)
    _field(error_info, "domain", 2, _F.TYPE_STRING)
    entry = error_info.nested_type.add(name="MetadataEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, _F.TYPE_STRING)
    _field(
        error_info,
        "metadata",
        3,
        _F.TYPE_MESSAGE,
        label=_REPEATED,
        type_name=".google.rpc.ErrorInfo.MetadataEntry",
    )

    # message RetryInfo { google.protobuf.Duration retry_delay = 1; }
    retry_info = fdp.message_type.add(name="RetryInfo")
    _field(
        retry_info,
        "retry_delay",
        1,
        _F.TYPE_MESSAGE,
        type_name=".google.protobuf.Duration",
        json_name="retryDelay",
    )

    # message BadRequest {
    #   message FieldViolation { string field = 1; string description = 2; string reason = 3; ... }
    #   repeated FieldViolation field_violations = 1;
    # }
    bad_request = fdp.message_type.add(name="BadRequest")
    violation = bad_request.nested_type.add(name="FieldViolation")
    _field(violation, "field", 1, _F.TYPE_STRING)
    _field(violation, "description", 2, _F.TYPE_STRING)
    _field(violation, "reason", 3, _F.TYPE_STRING)
    _field(
        bad_request,
        "field_violations",
        1,
        _F.TYPE_MESSAGE,
        label=_REPEATED,
        type_name=".google.rpc.BadRequest.FieldViolation",
        json_name="fieldViolations",
    )

    # message ResourceInfo { string resource_type = 1; string resource_name = 2; string owner = 3;
    #                        string description = 4; }
    resource_info = fdp.message_type.add(name="ResourceInfo")
    _field(resource_info, "resource_type", 1, _F.TYPE_STRING, json_name="resourceType")
    _field(resource_info, "resource_name", 2, _F.TYPE_STRING, json_name="resourceName")
    _field(resource_info, "owner", 3, _F.TYPE_STRING)
    _field(resource_info, "description", 4, _F.TYPE_STRING)
    return fdp


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for wkt in (any_pb2.DESCRIPTOR, duration_pb2.DESCRIPTOR):
        pool.AddSerializedFile(wkt.serialized_pb)
    pool.AddSerializedFile(_status_file().SerializeToString())
    pool.AddSerializedFile(_error_details_file().SerializeToString())
    return pool


_POOL = _build_pool()


def message_class(full_name: str) -> type[Message]:
    """The private-pool class of ``google.rpc.<Name>`` (or ``google.protobuf.Any``/``Duration``)."""
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


Status = message_class("google.rpc.Status")
ErrorInfoMessage = message_class("google.rpc.ErrorInfo")
RetryInfoMessage = message_class("google.rpc.RetryInfo")
BadRequestMessage = message_class("google.rpc.BadRequest")
ResourceInfoMessage = message_class("google.rpc.ResourceInfo")

_DETAIL_CLASSES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (ErrorInfoMessage, RetryInfoMessage, BadRequestMessage, ResourceInfoMessage)
}


class FieldViolation(NamedTuple):
    """One ``google.rpc.BadRequest.FieldViolation``: a ``(field, description)`` tuple."""

    field: str
    description: str


class ResourceInfo(NamedTuple):
    """One ``google.rpc.ResourceInfo``."""

    resource_type: str = ""
    resource_name: str = ""
    owner: str = ""
    description: str = ""


@dataclass
class DecodedStatus:
    """What a ``google.rpc.Status`` said, in plain Python types."""

    code: int = 0
    message: str = ""
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    field_violations: list[FieldViolation] = field(default_factory=list)
    resource_info: list[ResourceInfo] = field(default_factory=list)
    #: ``Any`` type URLs found in ``details`` that this decoder does not know.
    unknown_details: list[str] = field(default_factory=list)
    has_error_info: bool = False


def _type_name(type_url: str) -> str:
    return type_url.rsplit("/", 1)[-1]


def decode_status(data: bytes) -> DecodedStatus:
    """Decode a serialized ``google.rpc.Status``; raises ``google.protobuf.message.DecodeError``."""
    status: Any = Status()
    status.ParseFromString(data)
    out = DecodedStatus(code=status.code, message=status.message)
    for detail in status.details:
        name = _type_name(detail.type_url)
        cls = _DETAIL_CLASSES.get(name)
        if cls is None:
            out.unknown_details.append(detail.type_url)
            continue
        msg: Any = cls()
        try:
            msg.ParseFromString(detail.value)
        except DecodeError:
            out.unknown_details.append(detail.type_url)
            continue
        if name == "google.rpc.ErrorInfo":
            if not out.has_error_info:  # the first ErrorInfo wins
                out.has_error_info = True
                out.reason = msg.reason
                out.domain = msg.domain
                out.metadata = dict(msg.metadata)
        elif name == "google.rpc.RetryInfo":
            if msg.HasField("retry_delay"):
                delay = msg.retry_delay
                out.retry_after = max(0.0, delay.seconds + delay.nanos / 1e9)
        elif name == "google.rpc.BadRequest":
            out.field_violations.extend(FieldViolation(v.field, v.description) for v in msg.field_violations)
        elif name == "google.rpc.ResourceInfo":
            out.resource_info.append(
                ResourceInfo(msg.resource_type, msg.resource_name, msg.owner, msg.description)
            )
    return out


def status_details_from_metadata(metadata: Iterable[Any] | None) -> bytes | None:
    """The ``grpc-status-details-bin`` value of (trailing) metadata, if any.

    Accepts the sync API's tuple of ``_Metadatum`` and ``grpc.aio.Metadata`` alike
    (both iterate as ``(key, value)`` pairs).
    """
    if not metadata:
        return None
    for item in metadata:
        try:
            key, value = item[0], item[1]
        except (TypeError, IndexError, KeyError):
            continue
        if key == STATUS_DETAILS_KEY:
            if isinstance(value, str):  # should not happen for -bin keys, be lenient
                value = value.encode("latin-1")
            return bytes(value)
    return None
