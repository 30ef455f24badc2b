"""The AuthService gRPC edge."""

from __future__ import annotations

from auth_service.users import UserDirectory
from scout.auth.v1 import auth_pb2_grpc


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, users: UserDirectory) -> None:
        self._users = users
