"""Links in the REST API: a file's link, to copy and send, and the bytes a link names,
fetched through this node (`files.links`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from chordshare.faces.api_access import NodeAccess
from chordshare.faces.api_download import NO_CONDITIONS, Downloads, documented_download
from chordshare.faces.api_errors import ApiError
from chordshare.faces.api_folders import zip_response
from chordshare.faces.api_inputs import LINK, StoredNameQuery
from chordshare.faces.api_models import LinkInfo
from chordshare.faces.api_routing import ApiRoute
from chordshare.faces.linking import find_linkable, link_json
from chordshare.files.folders import folder_of
from chordshare.files.links import MAX_LINK, BadLink, make_link, parse_link
from chordshare.sharing.folder_client import FolderClient


def link_routes(access: NodeAccess, downloads: Downloads, token_needed: bool) -> APIRouter:
    """`token_needed`: the network's peers ask for a cluster token, so whoever opens a link
    into it must hold the token too."""
    router = APIRouter(route_class=ApiRoute)
    doc, reads = access.doc, access.reads

    @router.get(
        "/api/v1/link",
        summary="A link to a file's or a folder's exact bytes",
        description="One line naming the file's manifest id (its exact bytes), its name and "
        "a few nodes of this network, for `chordshare get LINK` or `/api/v1/link/file` "
        "anywhere that reaches one of them. A folder's link names its manifest file, which "
        "names every file of that version of the folder (`kind`: folder).",
        response_model=LinkInfo,
        **doc(reads, 400, 404, 502, 503),
    )
    async def link_of(name: StoredNameQuery) -> dict[str, Any]:
        found = await find_linkable(access.files(), name)
        via = [*found.holders, access.node().me.address]
        made = make_link(found.manifest.id, found.manifest.name, via)
        return link_json(made, found.manifest, token_needed)

    @router.get(
        "/api/v1/link/file",
        summary="Download the exact bytes a link names",
        description="Fetched through this node from the holders of the link's name, checked "
        "against the link: the version the link names even after its name was replaced, "
        "while a holder keeps it (`--link-grace`); 404 once none does. A folder's link "
        "answers that version of the folder as a zip, streamed (as `format=zip` of "
        "`/api/v1/folders/{name}`).",
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
        if folder_of(parsed.name) is not None:
            folders = FolderClient(access.files())
            return zip_response(folders, await folders.find_linked(parsed))
        return await downloads.answer(parsed.name, NO_CONDITIONS, request.method, link=parsed)

    return router
