"""The ring in the REST API: a node's routing state (this one, or another), the ring walked
along successors, and the owner of a key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from chordshare.faces.api_access import NodeAccess
from chordshare.faces.api_errors import ApiError
from chordshare.faces.api_inputs import ADDRESS, OTHER_NODE, lookup_parameter
from chordshare.faces.api_models import Lookup, NodeInfo, Ring
from chordshare.faces.api_routing import ApiRoute
from chordshare.sharing.download_cache import DownloadCache
from chordshare.transport.client import node_json


def cache_json(cache: DownloadCache) -> dict[str, int]:
    return {
        "files": cache.files,
        "used_bytes": cache.used_bytes,
        "max_bytes": cache.limit,
        "evictions": cache.evictions,
        "served_bytes": cache.served_bytes,
    }


def ring_routes(access: NodeAccess, bits: int, cache: DownloadCache) -> APIRouter:
    """The ring's operations; `bits`: the width of the ring's ids, for the lookup's
    document; `cache`: this node's download cache, whose counts this node's info gives."""
    router = APIRouter(route_class=ApiRoute)
    doc, reads = access.doc, access.reads

    @router.get(
        "/api/v1/node",
        summary="A node (this one, or the one at `address`): id, predecessor, successors, "
        "fingers; this one's download cache too",
        response_model=NodeInfo,
        **doc(reads, 400, 404, 502, 503),
    )
    async def get_node(
        address: Annotated[str | None, Query(description=OTHER_NODE, pattern=ADDRESS)] = None,
    ) -> dict[str, Any]:
        if address is None:
            return {**(await access.client().info()).to_json(), "cache": cache_json(cache)}
        return (await access.on_other_node(address, access.client().info)).to_json()

    @router.get(
        "/api/v1/ring",
        summary="Every node, walked along successors from this one",
        response_model=Ring,
        **doc(reads, 502, 503),
    )
    async def get_ring() -> dict[str, Any]:
        return {"nodes": [node_json(n) for n in await access.client().ring()]}

    @router.get(
        "/api/v1/lookup",
        summary="The owner of a key: a name (hashed) or an id",
        response_model=Lookup,
        openapi_extra={"parameters": [lookup_parameter(2**bits - 1)]},
        **doc(reads, 400, 502, 503),
    )
    async def lookup(
        key: Annotated[str | None, Query(include_in_schema=False)] = None,
        id: Annotated[int | None, Query(include_in_schema=False)] = None,
    ) -> dict[str, Any]:
        chord = access.node()
        if (key is None) == (id is None):
            raise ApiError(400, "invalid_request", "give key=NAME or id=N (one of them)")
        try:
            if id is None:
                assert key is not None  # one of them, as checked above
                ident = chord.space.hash(key)
            else:
                ident = chord.space.check(id)
        except ValueError as err:
            raise ApiError(400, "invalid_request", str(err)) from None
        result = await chord.lookup(ident)
        return {
            "key": ident,
            "owner": node_json(result.owner),
            "hops": result.hops,
            "timeouts": result.timeouts,
        }

    return router
