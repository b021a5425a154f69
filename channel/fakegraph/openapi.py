"""Request bodies checked against Meta's own OpenAPI document (spec/requests.json, extracted
from facebook/openapi's business-messaging-api_v23.0.yaml by spec/extract.py), corrected for
the document's known flaws, each named below:

- Message kinds are `allOf` parts, each with `additionalProperties: false`, which rejects
  the common fields (`to`, `type`…) of the other part: the parts are merged first.
- Fields documented on other pages are missing: `biz_opaque_callback_data` (Meta's status
  webhooks echo it, https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components)
  and `recipient`, a business-scoped user id in place of `to`
  (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids);
  `recipient_type` is optional ("individual" by default,
  https://developers.facebook.com/docs/whatsapp/cloud-api/messages/text-messages).
- Rules Meta's own examples break (`language.policy` required, latitude as a string, an
  index pattern…): each rule a request example breaks is dropped (_relax_to_examples).
- The interactive body's 1,024 characters are the buttons' limit; a list's is 4,096.
- `oneOf` branches overlap (a catalog action also fits the product action): read as `anyOf`.
  A oneOf with a `discriminator` (a message's `type`) is checked against the one schema its
  value names, as Meta does, rather than against every kind.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC = Path(__file__).resolve().parent / "spec" / "requests.json"
MESSAGES = "POST /{Version}/{Phone-Number-ID}/messages"
_REF = "#/components/schemas/"
_BASE = "urn:banditore:meta-openapi"


@functools.cache
def _spec() -> dict:
    return json.loads(SPEC.read_text(encoding="utf-8"))


def _merge(parts: list[dict]) -> dict:
    """One object schema from allOf parts: properties and requirements of all of them;
    closed (additionalProperties false) if any part was."""
    merged: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    closed = False
    for part in parts:
        for key, value in part.items():
            if key == "properties":
                for name, schema in value.items():
                    properties[name] = (
                        {"allOf": [properties[name], schema]} if name in properties else schema
                    )
            elif key == "required":
                required += [name for name in value if name not in required]
            elif key == "additionalProperties":
                closed = closed or value is False
            else:
                merged.setdefault(key, value)
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    if closed:
        merged["additionalProperties"] = False
    return merged


class _Schemas:
    """The component schemas with every allOf merged (refs to other schemas stay refs)."""

    def __init__(self, raw: dict[str, dict]) -> None:
        self.raw = raw
        self.done: dict[str, dict] = {}

    def named(self, name: str) -> dict:
        if name not in self.done:
            self.done[name] = {}  # a cycle through allOf would stop here
            self.done[name] = self.fix(self.raw[name])
        return self.done[name]

    def fix(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.fix(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "allOf" in node:
            parts = [self._part(p) for p in node["allOf"]]
            rest = {k: v for k, v in node.items() if k != "allOf"}
            return self.fix(_merge([*parts, rest]))
        # Branches that overlap (a catalog action is also a valid product action) make a
        # oneOf fail on Meta's own examples: any one branch is enough, as Meta decides by type.
        return {("anyOf" if k == "oneOf" else k): self.fix(v) for k, v in node.items()}

    def _part(self, part: dict) -> dict:
        ref = part.get("$ref", "") if isinstance(part, dict) else ""
        if ref.startswith(_REF) and len(part) == 1:
            return copy.deepcopy(self.named(ref[len(_REF) :]))
        return self.fix(part)


def _corrected(schemas: dict[str, dict]) -> dict[str, dict]:
    # One body object for every interactive kind, at the buttons' 1,024 characters; Meta's
    # list page allows 4,096 (https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-list-messages).
    # The fake's own rules (validation.py) keep each kind's limit.
    text = schemas.get("BodyObject", {}).get("properties", {}).get("text", {})
    if text.get("maxLength") == 1024:
        text["maxLength"] = 4096
    for name, schema in schemas.items():
        properties = schema.get("properties", {})
        if name.endswith("Message") and "messaging_product" in properties:
            properties.setdefault("biz_opaque_callback_data", {"type": "string", "maxLength": 512})
            properties.setdefault("recipient", {"type": "string", "minLength": 1})
            if "to" in schema.get("required", []):
                schema["required"] = [r for r in schema["required"] if r != "to"]
                schema.setdefault("anyOf", [{"required": ["to"]}, {"required": ["recipient"]}])
            # Optional on Meta's send-messages page ("individual" by default).
            schema["required"] = [r for r in schema.get("required", []) if r != "recipient_type"]
    return schemas


@functools.cache
def _registry() -> tuple[Registry, dict[str, dict]]:
    raw = _spec()["schemas"]
    fixer = _Schemas(raw)
    schemas = _corrected({name: fixer.named(name) for name in raw})
    document = {"components": {"schemas": schemas}}
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource(_BASE, resource)
    _relax_to_examples(registry, schemas)
    return registry, schemas


def _root(operation: str, kind: str) -> dict:
    """The schema a body of `operation` is checked against: by reference into the corrected
    components, the discriminator's choice when `kind` names one."""
    schema = _spec()["operations"][operation]["schema"]
    ref = schema.get("$ref", "")
    if not ref.startswith(_REF):
        text = json.dumps(_Schemas(_spec()["schemas"]).fix(schema))
        return json.loads(text.replace('"#/components/', f'"{_BASE}#/components/'))
    name = ref[len(_REF) :]
    if kind == _MARK_READ and operation == MESSAGES:
        return _READ_RECEIPT
    mapping = _spec()["schemas"][name].get("discriminator", {}).get("mapping", {})
    target = mapping.get(kind, ref)
    return {"$ref": f"{_BASE}{target}"}


_MARK_READ = "read receipt"


def _kind(body: Any) -> str:
    """A message's `type`. Without one: a read receipt (`status`, documented on its own page),
    else the kind whose object the body carries (Meta's examples leave `type` out), else text,
    Meta's default."""
    if not isinstance(body, dict):
        return ""
    kind = body.get("type")
    if kind is None:
        if "status" in body and "message_id" in body:
            return _MARK_READ
        mapping = _spec()["schemas"]["Message"]["discriminator"]["mapping"]
        return next((name for name in mapping if name in body), "text")
    return kind if isinstance(kind, str) else ""


# Marking a message read (and showing a typing indicator) is a POST to the same endpoint,
# documented on its own page, missing from the document's schema:
# https://developers.facebook.com/docs/whatsapp/cloud-api/typing-indicators
_READ_RECEIPT = {
    "type": "object",
    "required": ["messaging_product", "status", "message_id"],
    "additionalProperties": False,
    "properties": {
        "messaging_product": {"const": "whatsapp"},
        "status": {"const": "read"},
        "message_id": {"type": "string", "minLength": 1},
        "typing_indicator": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"const": "text"}},
        },
    },
}
# Webhook payloads are not requests we check: their schemas reuse the send side's names.
_NOT_REQUESTS = ("POST /whatsapp/webhooks",)


def _relax_to_examples(registry: Registry, schemas: dict[str, dict]) -> None:
    """Drop each rule one of Meta's own request examples breaks (a required field it leaves
    out, a type, pattern, enum or length it does not follow): where Meta's examples and its
    schema disagree, the examples are what Meta accepts."""
    for _ in range(5):
        changed = False
        for operation, item in _spec()["operations"].items():
            if operation in _NOT_REQUESTS:
                continue
            for example in item["examples"].values():
                root = _root(operation, _kind(example))
                validator = Draft202012Validator(root, registry=registry)
                for error in list(validator.iter_errors(example)):
                    changed |= _relax(root, error, registry)
        if not changed:
            return


def _relax(root: dict, error, registry: Registry) -> bool:
    node: Any = root
    resolver = registry.resolver(base_uri=_BASE)
    if error.validator in ("oneOf", "anyOf") and error.context:
        # The branch that came closest: relax what it says, not every alternative.
        branches: dict[Any, list] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        closest = min(branches.values(), key=len)
        relaxed = [_relax(root, sub, registry) for sub in closest]  # every one, no short cut
        return any(relaxed)
    for key in [*list(error.absolute_schema_path)[:-1], None]:
        # The path does not always name the $ref hops: follow them where the key is not here.
        while isinstance(node, dict) and "$ref" in node and (key is None or key not in node):
            node = resolver.lookup(node["$ref"]).contents
        if key == "$ref" or key is None:
            continue
        node = node[key]
    keyword, instance = error.validator, error.instance
    if keyword == "required" and isinstance(instance, dict):
        node["required"] = [r for r in node["required"] if r in instance]
    elif keyword == "type":
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        extra = {bool: "boolean", int: "integer", float: "number", str: "string"}
        node["type"] = [*types, extra.get(type(instance), "object")]
    elif keyword in ("enum",):
        node["enum"] = [*node["enum"], instance]
    elif keyword in ("pattern", "maxLength", "minLength", "format", "const"):
        del node[keyword]
    else:
        return False
    return True


@functools.cache
def _validators(operation: str, kind: str) -> tuple[Any, Draft202012Validator]:
    """(fast, explaining): jsonschema-rs says whether a body is valid (about 100 times faster:
    the fake checks every send, and 1.5 ms a request in Python would make "Meta" the slowest
    process of a benchmark); jsonschema says why not, for the rare rejected body."""
    registry, schemas = _registry()
    root = _root(operation, kind)
    local = json.loads(json.dumps(root).replace(f'"{_BASE}#/components/', '"#/components/'))
    fast = jsonschema_rs.Draft202012Validator(local | {"components": {"schemas": schemas}})
    return fast, Draft202012Validator(root, registry=registry)


def prepare() -> None:
    """Load the document and apply its corrections now (about 2 s), with the validator of
    every message kind."""
    mapping = _spec()["schemas"]["Message"]["discriminator"]["mapping"]
    for kind in [*mapping, _MARK_READ]:
        _validators(MESSAGES, kind)


def operations() -> dict[str, dict]:
    """The spec's JSON request bodies: "METHOD /path" → {"schema", "examples"}."""
    return _spec()["operations"]


def spec_problems(body: Any, operation: str = MESSAGES) -> list[str]:
    """What in `body` Meta's OpenAPI document (corrected as above) rejects; [] when valid."""
    if operation not in _spec()["operations"]:
        raise KeyError(f"no request body for {operation!r} in the spec")
    fast, validator = _validators(operation, _kind(body))
    if fast.is_valid(body):
        return []
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(body)'}: {error.message}"
        for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    ]
