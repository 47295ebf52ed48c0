"""``grpc.mode: aio`` keeps working: the bad-input suite (test_grpc_bad_input) again, against
a server serving with grpc.aio."""

from tests.aio_mode import grpc_server, stubs  # noqa: F401 - these fixtures replace conftest's
from tests.test_grpc_bad_input import *
