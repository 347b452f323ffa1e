"""What the REST API accepts, as JSON Schema constraints for its OpenAPI document.

The file-name patterns restate `files.names` (which stays the one that enforces them: a
name breaking them is answered 400 `bad_name`); the API's tests check that both say the
same of every character. They need look-ahead, which pydantic's regex engine lacks, so they
document rather than validate. The other constraints are checked by pydantic as written.
Patterns use only syntax that Python, ECMA-262 and Rust's regex agree on. A name's limit is
255 bytes of UTF-8; `maxLength` counts characters, so it can only say 255.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import File, Form, Query, UploadFile
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from chordshare.files.folders import FOLDER_SUFFIX, MAX_FOLDER_NAME_BYTES
from chordshare.files.names import MAX_NAME_BYTES
from chordshare.files.packs import PACK_SUFFIX

# Characters a new name may not hold: controls, bidirectional controls, line and paragraph
# separators, and the backslash ('/' separates a name's parts).
_NOT_IN_NEW_NAME = r"\x00-\x1f\x7f-\x9f\\\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
# White space a name may not start or end with: what Python's str.isspace() calls so.
_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_SPACE_IN_NEW_NAME = r" \xa0\u1680\u2000-\u200a\u202f\u205f\u3000"  # _SPACE less controls


def _path(excluded: str, space: str) -> str:
    """A name as a relative path: parts separated by '/', none empty, `.` or `..`, none
    starting or ending with white space, none holding an `excluded` character."""
    part = rf"(?!\.\.?(?:/|$))[^{excluded}/{space}](?:[^{excluded}/]*[^{excluded}/{space}])?"
    return rf"{part}(?:/{part})*"


NEW_NAME = rf"^{_path(_NOT_IN_NEW_NAME, _SPACE_IN_NEW_NAME)}$"
# A name as stored: older names may hold controls.
_STORED = _path(r"\\\x00", _SPACE)
STORED_NAME = rf"^{_STORED}$"
# What a download names: a stored name, or `sha256:` and 8 to 64 hex digits of the content's
# hash (`files.search`), which no name can then begin with.
TARGET = rf"^(?:sha256:[0-9a-fA-F]{{8,64}}|(?!sha256:){_STORED})$"

_HEX4 = "[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(
    [
        rf"(?:{_HEX4}:){{7}}{_HEX4}",
        rf"(?:{_HEX4}:){{1,7}}:",
        rf"(?:{_HEX4}:){{1,6}}:{_HEX4}",
        *(rf"(?:{_HEX4}:){{1,{n}}}(?::{_HEX4}){{1,{7 - n}}}" for n in range(5, 0, -1)),
        rf":(?:(?::{_HEX4}){{1,7}}|:)",
    ]
)
_PORT = (
    r"0*(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
# HOST:PORT, or [IPv6]:PORT: a host name or IPv4 address, a port from 1 to 65535.
ADDRESS = rf"^(?:[A-Za-z0-9._-]+|\[(?:{_IPV6})\]):{_PORT}$"


def name_rules(pattern: str) -> dict[str, Any]:
    """The JSON Schema of a file name; `files.names` enforces it, with its own codes."""
    return {"pattern": pattern, "maxLength": MAX_NAME_BYTES}


OTHER_NODE = "HOST:PORT of another node."

# A file's name in a path, as a remove takes it; a download's target (a name or a hash).
StoredPath = Annotated[
    str, PathParam(description="The file's name.", json_schema_extra=name_rules(STORED_NAME))
]
TargetPath = Annotated[
    str,
    PathParam(
        description="A name, or `sha256:` and 8 to 64 hex digits of the content's SHA-256.",
        json_schema_extra=name_rules(TARGET),
    ),
]

# A file's name in a query (its link).
StoredNameQuery = Annotated[
    str, Query(description="The file's name.", json_schema_extra=name_rules(STORED_NAME))
]


def _folder_path(max_length: int) -> Any:
    return PathParam(
        description="The folder's name.",
        json_schema_extra={"pattern": NEW_NAME, "maxLength": max_length},
    )


# A folder's name: one its manifest's name (`NAME.chordshare-folder`) fits the name rule too.
FolderPath = Annotated[str, _folder_path(MAX_NAME_BYTES - len(FOLDER_SUFFIX))]
# A new folder's name: its packs' names (`NAME.chordshare-pack-<n>`) fit the rule too.
NewFolderPath = Annotated[str, _folder_path(MAX_FOLDER_NAME_BYTES)]
# A link as the API takes it (`files.links`, which enforces it): the link's file id, a
# name of plain characters, one node to ask.
LINK = (
    r"^chordshare://[0-9a-f]{64}/[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,99}"
    r"\?via=[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}:[1-9][0-9]{0,3}$"
)

# An upload's name: empty takes the uploaded file's own.
UPLOAD_NAME = f"^$|{NEW_NAME}"

# Names only a folder's put writes (`files.folders.check_plain_name`): refused, 400.
KEPT_NAMES = (
    f"Not a name kept for a folder's manifest (`NAME{FOLDER_SUFFIX}`) or pack "
    f"(`NAME{PACK_SUFFIX}<n>`)."
)

# The name of a file uploaded as a request's body.
NewNamePath = Annotated[
    str,
    PathParam(
        description=f"The file's name in the network. {KEPT_NAMES}",
        json_schema_extra=name_rules(NEW_NAME),
    ),
]
ReplaceQuery = Annotated[
    bool, Query(description="`true`: replace other bytes of that name (default: `false`).")
]
# A request body that is the file itself, for the OpenAPI document (the endpoint reads it).
RAW_FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "The file's bytes, any, with their `Content-Length` (none: an empty file).",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


# The fields of an upload's form. A form's values are text: `replace` is the word, and
# an empty value is a missing one (FastAPI).
UploadBytes = Annotated[
    UploadFile, File(description="The file's bytes: any.", json_schema_extra={"format": "binary"})
]
UploadName = Annotated[
    str,
    Form(
        description=f"Name in the network (empty: the uploaded file's name). {KEPT_NAMES}",
        json_schema_extra=name_rules(UPLOAD_NAME),
    ),
]
UploadReplace = Annotated[
    Literal["true", "false", ""],
    Form(description="`true`: replace other bytes of that name (default: `false`)."),
]


class NameQuery(BaseModel):
    """The seed's download body."""

    file_name: str = Field(
        description="A name, or `sha256:` and 8 to 64 hex digits of the content's SHA-256.",
        json_schema_extra=name_rules(TARGET),
    )


class WordsQuery(BaseModel):
    """The seed's search body."""

    file_name: str = Field(min_length=1, description="Words the names must all contain.")


def lookup_parameter(max_id: int) -> dict[str, Any]:
    """The query of a lookup as one OpenAPI parameter, since it is `key` or `id`, exactly
    one of them: an object whose properties are the query's fields (form style, exploded)."""
    return {
        "name": "lookup",
        "in": "query",
        "required": True,
        "style": "form",
        "explode": True,
        "description": "Exactly one of `key` (a name: its hash is looked up) or `id`.",
        "schema": {
            "type": "object",
            "properties": {
                "key": {"type": "string", "description": "A name; its key is its hash."},
                "id": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": max_id,
                    "description": "A ring id, looked up as is.",
                },
            },
            "oneOf": [{"required": ["key"]}, {"required": ["id"]}],
        },
    }


class Conditions(BaseModel):
    """The headers of a conditional or range request of a file (RFC 9110)."""

    range: str | None = Field(
        None,
        description="`bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX`: those bytes (206). "
        "Another unit, or several ranges: the whole file. Malformed, or past the end: 416.",
    )
    if_range: str | None = Field(
        None, description="The ETag or Last-Modified the range holds for; else the whole file."
    )
    if_none_match: str | None = Field(
        None, description="Entity tags (weak ones too) or `*`: 304 when one is the file's."
    )
    if_modified_since: str | None = Field(
        None, description="An HTTP date: 304 unless put later (ignored with If-None-Match)."
    )
