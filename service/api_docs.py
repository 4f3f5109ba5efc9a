"""The API's documentation page at /schema, rendered on the server from the OpenAPI
document: no script, font or style sheet is fetched from anywhere (field stations are
often offline; Litestar's bundled viewers load theirs from CDNs)."""

from __future__ import annotations

from html import escape
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, YamlRenderPlugin

from service import schemas

__all__ = ["doc_plugins"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.4}h2{margin-top:2rem;font-size:1.1rem}code{background:#f3f3f3;"
    "padding:0 .2rem}.method{font-weight:bold;text-transform:uppercase;margin-right:.5rem}"
    "td,th{text-align:left;padding:.15rem .6rem .15rem 0;vertical-align:top}"
)


class _LocalDocs(OpenAPIRenderPlugin):
    """Every operation with its summary, parameters and documented answers."""

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        info = openapi_schema.get("info", {})
        title = escape(f"{info.get('title', 'API')} {info.get('version', '')}")
        json_url = self.get_openapi_json_route(request)
        parts = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{title}</h1>",
            f"<p>The machine-readable document: <a href='{escape(json_url)}'>{escape(json_url)}</a>"
            " (OpenAPI 3.1).</p>",
        ]
        for path, operations in sorted(_strict(openapi_schema).get("paths", {}).items()):
            for method, operation in operations.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                parts.append(_operation(method, path, operation))
        parts.append("</body></html>")
        return "".join(parts).encode()


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td><code>{escape(str(p.get('name')))}</code></td><td>{escape(str(p.get('in')))}"
        f"</td><td>{escape(str(p.get('description', '')))}</td></tr>"
        for p in operation.get("parameters", [])
    )
    answers = "".join(
        f"<tr><td>{escape(str(code))}</td><td>{escape(str(r.get('description', '')))}</td></tr>"
        for code, r in sorted(operation.get("responses", {}).items())
    )
    description = operation.get("description") or operation.get("summary") or ""
    return (
        f"<h2><span class='method'>{escape(method)}</span><code>{escape(path)}</code></h2>"
        f"<p>{escape(str(description))}</p>"
        + (f"<table><tr><th>parameter</th><th>in</th><th></th></tr>{rows}</table>" if rows else "")
        + f"<table><tr><th>status</th><th>answer</th></tr>{answers}</table>"
    )


class _StrictJson(JsonRenderPlugin):
    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, _strict(openapi_schema))


class _StrictYaml(YamlRenderPlugin):
    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, _strict(openapi_schema))


def _strict(openapi_schema: dict[str, Any]) -> dict[str, Any]:
    """The document with `additionalProperties: false` on the request bodies that refuse
    unknown keys (msgspec's `forbid_unknown_fields`), which Litestar's generator omits: a
    typo in a field name is a 400, and the schema must say so."""
    components = openapi_schema.get("components", {}).get("schemas", {})
    for name in _STRICT_BODIES:
        if name in components:
            components[name]["additionalProperties"] = False
    return openapi_schema


_STRICT_BODIES = [
    struct.__name__
    for struct in vars(schemas).values()
    if isinstance(struct, type)
    and issubclass(struct, msgspec.Struct)
    and struct.__struct_config__.forbid_unknown_fields
]


def doc_plugins() -> list[OpenAPIRenderPlugin]:
    """The page at /schema, and the document itself as JSON and YAML."""
    return [
        _LocalDocs(path="/"),
        _StrictJson(path="/openapi.json"),
        _StrictYaml(path=["/openapi.yaml", "/openapi.yml"]),
    ]
