"""How the store's HTTP routes turn WEBI errors into responses: a route class, so the mapping
travels with the routers into any app that mounts them (``webi store serve``, the marketplace node)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute

from marketplace.errors import (
    BlockMismatchError,
    CidError,
    ContentError,
    ContentNotFoundError,
    ContentTooLargeError,
    WebiError,
)


def status_of(error: WebiError) -> int:
    """The HTTP status for an error: the client's fault is 4xx, a damaged local block is 500."""
    if isinstance(error, CidError):
        return 400
    if isinstance(error, ContentNotFoundError):
        return 404
    if isinstance(error, ContentTooLargeError):
        return 413
    if isinstance(error, BlockMismatchError):
        return 500
    if isinstance(error, ContentError):
        return 400
    return 500


def kubo_error(status: int, message: str) -> JSONResponse:
    """Kubo's error body, which Kubo clients (ours included) read the ``Message`` of."""
    return JSONResponse({"Message": message, "Code": 0, "Type": "error"}, status_code=status)


class _ErrorMappingRoute(APIRoute):
    def render(self, status: int, message: str) -> Response:
        raise NotImplementedError  # each subclass renders its own body

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except WebiError as error:
                return self.render(status_of(error), str(error))
            except HTTPException as error:
                response = self.render(error.status_code, str(error.detail))
                response.headers.update(error.headers or {})
                return response

        return handle


class KuboRoute(_ErrorMappingRoute):
    """Errors as Kubo's JSON body."""

    def render(self, status: int, message: str) -> Response:
        return kubo_error(status, message)


class GatewayRoute(_ErrorMappingRoute):
    """Errors as plain text, as the HTTP gateway specification asks."""

    def render(self, status: int, message: str) -> Response:
        return PlainTextResponse(message + "\n", status_code=status)
