"""What "an operation says what it answers" means, for the unit test that walks the OpenAPI
document and for the fuzz run that checks answers against it."""

from __future__ import annotations

from typing import Any

ERROR_REF = "#/components/schemas/ErrorResponse"


def _named(schema: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """A schema with named fields: an object with properties, a list of such, or a choice of
    such (null allowed). A bare object (``dict[str, Any]``) or no schema is not."""
    if "$ref" in schema:
        return _named(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas)
    if "anyOf" in schema or "oneOf" in schema:
        options = [
            s for s in schema.get("anyOf", schema.get("oneOf", [])) if s.get("type") != "null"
        ]
        return bool(options) and all(_named(s, schemas) for s in options)
    kind = schema.get("type")
    if kind == "array":
        return _named(schema.get("items") or {}, schemas)
    if kind == "object":
        return bool(schema.get("properties"))
    return kind in ("string", "integer", "number", "boolean")


def untyped(document: dict[str, Any]) -> dict[str, str]:
    """``"METHOD path"`` of each operation that does not say what it answers, with the reason."""
    schemas = document.get("components", {}).get("schemas", {})
    found: dict[str, str] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            responses = operation.get("responses", {})
            success = {c: r for c, r in responses.items() if c.startswith("2")}
            if not success:
                found[label] = "no success answer"
                continue
            for code, response in success.items():
                content = response.get("content")
                if content is None:
                    if code != "204":
                        found[label] = f"{code} has no content"
                    continue
                for media, body in content.items():
                    if "json" in media and not _named(body.get("schema") or {}, schemas):
                        found[label] = f"{code} {media} has no named fields"
                    elif "json" not in media and not body.get("schema"):
                        found[label] = f"{code} {media} has no schema"
            refusals = responses.get("4XX", {}).get("content", {}).get("application/json", {})
            if refusals.get("schema", {}).get("$ref") != ERROR_REF:
                found[label] = "its refusals are not documented"
    return found
