"""``grpc.mode: aio`` keeps working: the upstream-failure, deadline and cancellation suite
(test_grpc_errors) and health Watch again, against a server serving with grpc.aio."""

from tests.aio_mode import grpc_server, stubs  # noqa: F401 - these fixtures replace conftest's
from tests.test_grpc_bridge import test_health_watch_streams_through_the_bridge  # noqa: F401
from tests.test_grpc_errors import *
