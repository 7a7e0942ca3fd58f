"""infra/openapi.yaml against infra/template.yaml (run by `make test`):

- the document's operations and the HTTP API's routes are the same set of `METHOD /path`, both
  derived from the files (a route added to one and not the other is named);
- a route behind the JWT authorizer is an operation that requires the bearer scheme, an open route
  (AuthorizationType NONE) an operation with `security: []`;
- path parameters match the path's `{name}` segments; every `$ref` resolves; operation ids are unique;
- each route's function routes exactly its routes: the `.route("/path", method(...))` calls of the
  axum `Router` in `functions/<fn>/src/` are the template's routes whose integration invokes it.
"""

from __future__ import annotations

import re
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

from checks.invariants import http_routes, props, resolve  # noqa: E402
import release  # noqa: E402

OPENAPI = ROOT / "infra" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def load_openapi() -> dict:
    import yaml

    return yaml.safe_load(OPENAPI.read_text())


def operations(doc: dict) -> dict[str, dict]:
    """`METHOD /path` -> operation, with the path item's parameters merged in."""
    ops = {}
    for path, item in (doc.get("paths") or {}).items():
        for method in METHODS:
            if method in item:
                op = dict(item[method])
                op["parameters"] = list(item.get("parameters", [])) + list(op.get("parameters", []))
                ops[f"{method.upper()} {path}"] = op
    return ops


def deref(doc: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve_pointer(doc, node["$ref"])
    return node


def resolve_pointer(doc: dict, ref: str):
    if not ref.startswith("#/"):
        raise KeyError(f"only local $refs are used here: {ref}")
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def all_refs(node) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for v in node.values():
            out += all_refs(v)
        return out
    if isinstance(node, list):
        return [r for v in node for r in all_refs(v)]
    return []


class TheOpenApiDocumentDescribesTheTemplatesHttpApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = release.load_template()
        cls.routes = http_routes(cls.template)
        cls.doc = load_openapi()
        cls.ops = operations(cls.doc)

    def test_the_document_is_openapi_3_1_with_info_and_paths(self):
        self.assertRegex(str(self.doc.get("openapi")), r"^3\.1\.\d+$")
        self.assertTrue(self.doc.get("info", {}).get("title"))
        self.assertTrue(self.ops, "no operations in infra/openapi.yaml")

    def test_every_template_route_is_documented(self):
        missing = sorted(set(self.routes) - set(self.ops))
        self.assertEqual(missing, [], f"routes in infra/template.yaml missing from infra/openapi.yaml: {missing}")

    def test_every_documented_operation_is_a_template_route(self):
        extra = sorted(set(self.ops) - set(self.routes))
        self.assertEqual(extra, [], f"operations in infra/openapi.yaml with no route in infra/template.yaml: {extra}")

    def test_authorization_matches_between_route_and_operation(self):
        default_security = self.doc.get("security", [])
        schemes = self.doc.get("components", {}).get("securitySchemes", {})
        for key, (logical, route) in sorted(self.routes.items()):
            if key not in self.ops:
                continue
            with self.subTest(route=key):
                security = self.ops[key].get("security", default_security)
                needs_jwt = props(route).get("AuthorizationType") == "JWT"
                bearer = any(
                    schemes.get(name, {}).get("scheme") == "bearer" for req in security for name in req
                )
                self.assertEqual(
                    bearer,
                    needs_jwt,
                    f"{logical} ({key}): AuthorizationType {props(route).get('AuthorizationType')} but the "
                    f"document's security is {security}",
                )
                # The scopes a route requires (AuthorizationScopes, parameters at their defaults) are
                # the roles its operation lists (OpenAPI 3.1: roles for a bearer scheme).
                scopes = sorted(
                    str(resolve(self.template, x)) for x in props(route).get("AuthorizationScopes") or []
                )
                roles = sorted(role for req in security for name in req for role in req[name])
                self.assertEqual(roles, scopes, f"{logical} ({key}): scopes {scopes}, document lists {roles}")

    def test_path_parameters_match_the_path(self):
        for key, op in sorted(self.ops.items()):
            with self.subTest(operation=key):
                in_path = set(re.findall(r"\{([^}+]+)\+?\}", key.split(" ", 1)[1]))
                declared = {p["name"] for p in map(lambda p: deref(self.doc, p), op["parameters"]) if p.get("in") == "path"}
                self.assertEqual(declared, in_path, f"{key}: path parameters declared {declared}, path has {in_path}")

    def test_every_operation_has_a_unique_id_and_responses(self):
        ids = [op.get("operationId") for op in self.ops.values()]
        self.assertEqual(len(ids), len(set(ids)), f"duplicate operationId in {ids}")
        for key, op in self.ops.items():
            self.assertTrue(op.get("operationId"), f"{key}: no operationId")
            self.assertTrue(op.get("responses"), f"{key}: no responses")

    def test_every_reference_resolves(self):
        for ref in all_refs(self.doc):
            with self.subTest(ref=ref):
                try:
                    resolve_pointer(self.doc, ref)
                except KeyError as err:
                    self.fail(f"unresolved $ref {ref}: {err}")


# One `.route("/path", get(...))` (or `post`, ... ; a chain `get(a).post(b)` is several).
RUST_ROUTE = re.compile(r'\.route\(\s*"([^"]+)",\s*((?:\.?(?:get|post|put|delete|patch)\([^()]*\))+)')
RUST_METHOD = re.compile(r"(get|post|put|delete|patch)\(")


def routed_by_crate(crate: Path) -> set[str]:
    """`METHOD /path` for every route the crate's axum routers declare."""
    out = set()
    for src in sorted(crate.glob("src/**/*.rs")):
        for path, calls in RUST_ROUTE.findall(src.read_text()):
            out |= {f"{m.upper()} {path}" for m in RUST_METHOD.findall(calls)}
    return out


def routes_by_crate(template: dict) -> dict[Path, set[str]]:
    """The function crate each HTTP route's integration invokes -> its route keys."""
    res = template["Resources"]
    out: dict[Path, set[str]] = {}
    for key, (_, route) in http_routes(template).items():
        target = props(route)["Target"]["Fn::Sub"].removeprefix("integrations/${").removesuffix("}")
        function = props(res[target])["IntegrationUri"]["Fn::GetAtt"][0]
        crate = (ROOT / "infra" / props(res[function])["CodeUri"]).resolve()
        out.setdefault(crate, set()).add(key)
    return out


class TheFunctionsRouteTheTemplatesRoutes(unittest.TestCase):
    def test_each_function_routes_exactly_the_routes_that_invoke_it(self):
        expected = routes_by_crate(release.load_template())
        self.assertEqual(len(expected), 3, "upload, images and admin serve the HTTP API")
        for crate, keys in sorted(expected.items()):
            with self.subTest(crate=crate.name):
                self.assertEqual(routed_by_crate(crate), keys)


class TheRouteCheckNoticesADifference(unittest.TestCase):
    def test_a_route_missing_from_a_router_or_from_the_template_is_reported(self):
        crate = (ROOT / "functions" / "images").resolve()
        expected = routes_by_crate(release.load_template())[crate]
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "src").mkdir()
            (Path(tmp) / "src" / "lib.rs").write_text(
                'Router::new()\n    .route("/api/images", get(Self::list))\n'
                '    .route("/api/images/{id}", get(Self::get).delete(Self::remove))\n'
            )
            routed = routed_by_crate(Path(tmp))
        self.assertEqual(routed, {"GET /api/images", "GET /api/images/{id}", "DELETE /api/images/{id}"})
        self.assertEqual(sorted(routed - expected), ["DELETE /api/images/{id}"])
        self.assertEqual(
            sorted(expected - routed),
            ["GET /api/images/{id}/processing-status", "POST /api/images/{id}/retry-processing"],
        )

    def test_a_route_missing_from_the_document_is_reported(self):
        template = release.load_template()
        routes = dict(http_routes(template))
        routes["DELETE /api/images/{id}"] = ("DeleteImageRoute", {})
        self.assertEqual(sorted(set(routes) - set(operations(load_openapi()))), ["DELETE /api/images/{id}"])


if __name__ == "__main__":
    unittest.main()
