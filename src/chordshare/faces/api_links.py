"""Links in the REST API: a file's link, to copy and send, and the bytes a link names,
fetched through this node (`files.links`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from chordshare.faces.api_access import NodeAccess
from chordshare.faces.api_download import NO_CONDITIONS, Downloads, documented_download
from chordshare.faces.api_errors import ApiError
from chordshare.faces.api_inputs import LINK, StoredNameQuery
from chordshare.faces.api_models import LinkInfo
from chordshare.faces.api_routing import ApiRoute
from chordshare.faces.linking import find_linkable
from chordshare.faces.shapes import manifest_json
from chordshare.files.links import MAX_LINK, BadLink, make_link, parse_link


def link_routes(access: NodeAccess, downloads: Downloads, token_needed: bool) -> APIRouter:
    """`token_needed`: the network's peers ask for a cluster token, so whoever opens a link
    into it must hold the token too."""
    router = APIRouter(route_class=ApiRoute)
    doc, reads = access.doc, access.reads

    @router.get(
        "/api/v1/link",
        summary="A link to a file's exact bytes",
        description="One line naming the file's manifest id (its exact bytes), its name and "
        "a few nodes of this network, for `chordshare get LINK` or `/api/v1/link/file` "
        "anywhere that reaches one of them.",
        response_model=LinkInfo,
        **doc(reads, 400, 404, 502, 503),
    )
    async def link_of(name: StoredNameQuery) -> dict[str, Any]:
        found = await find_linkable(access.files(), name)
        via = [*found.holders, access.node().me.address]
        made = make_link(found.manifest.id, found.manifest.name, via)
        return {
            **manifest_json(found.manifest),
            "link": str(made),
            "manifest_id": made.manifest_id.hex(),
            "needs_cluster_token": token_needed,
        }

    @router.get(
        "/api/v1/link/file",
        summary="Download the exact bytes a link names",
        description="Fetched through this node from the holders of the link's name, checked "
        "against the link: the version the link names even after its name was replaced, "
        "while a holder keeps it (`--link-grace`); 404 once none does.",
        response_class=Response,
        **doc(reads, 400, 404, 500, 502, 503, 507, ok=documented_download(ranges=False)),
    )
    async def open_link(
        request: Request,
        link: Annotated[
            str,
            Query(
                description="A chordshare:// link.",
                max_length=MAX_LINK,
                json_schema_extra={"pattern": LINK},
            ),
        ],
    ) -> Response:
        try:
            parsed = parse_link(link)
        except BadLink as err:
            raise ApiError(400, "bad_link", str(err)) from None
        return await downloads.answer(parsed.name, NO_CONDITIONS, request.method, link=parsed)

    return router
