"""The API's JSON parser: a body over the size limit is a 413 and one nested too deeply a 400.

DRF's own JSONParser reads the whole stream (Django's DATA_UPLOAD_MAX_MEMORY_SIZE guards only
`request.body` and forms, not the stream DRF reads) and parses with the standard library, whose
recursion on a body nested 50,000 deep raises RecursionError (a 500, even for anonymous users).
orjson stops at 1,024 levels with a JSONDecodeError (it has no setting for that depth), refuses lone
surrogates and infinities PostgreSQL could not store, and is faster on the hot path; the project's
own cap, API_JSON_MAX_DEPTH, is checked after it.
"""
from __future__ import annotations

import orjson
from django.conf import settings
from rest_framework import parsers, renderers
from rest_framework.exceptions import ParseError


def json_depth_over(data, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit` levels (iterative: no recursion to exhaust)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def json_body(body: bytes):
    """The parsed JSON of a request body, refusing (ParseError) what is malformed or nested too deeply."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ParseError(f"JSON parse error - {error}") from None
    limit = settings.API_JSON_MAX_DEPTH
    # Counting brackets is a C loop over the bytes: the common shallow body is never walked.
    if body.count(b"[") + body.count(b"{") > limit and json_depth_over(data, limit):
        raise ParseError(f"The JSON body nests arrays and objects deeper than {limit} levels (API_JSON_MAX_DEPTH).")
    return data


class JSONParser(parsers.BaseParser):
    media_type = "application/json"
    renderer_class = renderers.JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1)
        if len(body) > limit:
            # Imported here: errors.py imports DRF's views, whose APIView reads the parser setting.
            from annotation_site.errors import body_too_large

            raise body_too_large()
        encoding = parsers.get_encoding(parser_context or {})
        if encoding.lower().replace("-", "") != "utf8":
            try:
                body = body.decode(encoding).encode()
            except (LookupError, UnicodeError) as error:
                raise ParseError(f"The body is not valid {encoding} text: {error}") from None
        return json_body(body)
