"""JSON bodies the API accepts: parse errors of every kind are a 400, never a 500."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# A post is a flat object holding one list of slugs: depth 2. Deeper input is never meaningful,
# and Python's JSON parser (and later json.dumps) would hit the recursion limit at ~1,000 levels.
MAX_DEPTH = 8


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        problem = json_problem(data)
        if problem:
            raise ParseError(f"JSON parse error - {problem}")
        return data


def json_problem(data) -> str | None:
    """What makes parsed JSON unusable, walked without recursion: too deep, or a string with a
    lone surrogate ("\\ud800" is valid JSON, but no UTF-8 text: an error message echoing it, or
    the database, would fail to encode it)."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if not _is_utf8(value):
                return "a string holds a lone surrogate (\\ud800-\\udfff)."
            continue
        if isinstance(value, dict):
            children = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels."
        pending.extend((child, depth + 1) for child in children)
    return None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
