"""Invariants of who may do what: IAM statements name their resources, buckets are private and
TLS-only, CORS allows the configured origins only, every API stage throttles, and the admin routes
need the admin scope."""

from __future__ import annotations

from checks.template import Template, as_list, function_setting, functions, http_routes, policy_statements, props, ref_target, resources

# IAM actions whose Resource must be "*" (AWS offers no resource-level permission for them).
STAR_RESOURCE_ACTIONS = {
    "cloudwatch:PutMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}


def no_star_resource_except_where_aws_requires_it(t: Template) -> list[str]:
    out = []
    for owner, st in policy_statements(t):
        if st.get("Effect") != "Allow":
            continue
        actions = [a for a in as_list(st.get("Action", [])) if isinstance(a, str)]
        if "*" in actions or any(a.endswith(":*") for a in actions):
            out.append(f"{owner}: Allow with a wildcard action {actions}")
        res = as_list(st.get("Resource", []))
        if "*" in res and not set(actions) <= STAR_RESOURCE_ACTIONS:
            out.append(f"{owner}: Allow {actions} on Resource '*' (name the resources)")
    return out


def every_bucket_blocks_public_access(t: Template) -> list[str]:
    out = []
    keys = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    for name, b in resources(t, "AWS::S3::Bucket").items():
        pab = props(b).get("PublicAccessBlockConfiguration") or {}
        off = [k for k in keys if pab.get(k) is not True]
        if off:
            out.append(f"{name}: PublicAccessBlockConfiguration {', '.join(off)} not true")
    return out


def every_bucket_policy_denies_requests_without_tls(t: Template) -> list[str]:
    out = []
    policies = resources(t, "AWS::S3::BucketPolicy")
    for name in resources(t, "AWS::S3::Bucket"):
        ok = False
        for pol in policies.values():
            if ref_target(props(pol).get("Bucket")) != name:
                continue
            for st in as_list(props(pol).get("PolicyDocument", {}).get("Statement", [])):
                cond = (st.get("Condition") or {}).get("Bool", {})
                targets = {repr(r) for r in as_list(st.get("Resource", []))}
                if (
                    st.get("Effect") == "Deny"
                    and str(cond.get("aws:SecureTransport")).lower() == "false"
                    and "s3:*" in as_list(st.get("Action", []))
                    and st.get("Principal") in ("*", {"AWS": "*"})
                    and any("/*" in r for r in targets)
                    and any("/*" not in r for r in targets)
                ):
                    ok = True
        if not ok:
            out.append(f"{name}: no bucket policy denying s3:* on the bucket and its objects when aws:SecureTransport is false")
    return out


def allowed_origins_are_a_parameter_without_a_star(t: Template) -> list[str]:
    out = []
    param = t.get("Parameters", {}).get("AllowedOrigins")
    if param is None:
        out.append("Parameters: AllowedOrigins is missing")
    elif "*" in str(param.get("Default", "")):
        out.append(f"AllowedOrigins: default {param.get('Default')!r} allows every origin")
    for name, b in resources(t, "AWS::S3::Bucket").items():
        for rule in (props(b).get("CorsConfiguration") or {}).get("CorsRules", []):
            if rule.get("AllowedOrigins") != {"Ref": "AllowedOrigins"}:
                out.append(f"{name}: CORS AllowedOrigins is {rule.get('AllowedOrigins')!r}, not !Ref AllowedOrigins")
    for name, api in resources(t, "AWS::ApiGatewayV2::Api").items():
        cors = props(api).get("CorsConfiguration")
        if cors is not None and cors.get("AllowOrigins") != {"Ref": "AllowedOrigins"}:
            out.append(f"{name}: CORS AllowOrigins is {cors.get('AllowOrigins')!r}, not !Ref AllowedOrigins")
    return out


def every_api_stage_throttles_and_every_post_route_has_its_own_limit(t: Template) -> list[str]:
    out = []
    apis = resources(t, "AWS::ApiGatewayV2::Api")
    routes = http_routes(t)
    for name, stage in resources(t, "AWS::ApiGatewayV2::Stage").items():
        p = props(stage)
        api = ref_target(p.get("ApiId"))
        d = p.get("DefaultRouteSettings") or {}
        if not (d.get("ThrottlingRateLimit") and d.get("ThrottlingBurstLimit")):
            out.append(f"{name}: no DefaultRouteSettings throttling (rate and burst)")
        if props(apis.get(api, {})).get("ProtocolType") != "HTTP":
            continue
        settings = p.get("RouteSettings") or {}
        for key in settings:
            if key not in routes:
                out.append(f"{name}: RouteSettings names '{key}', which is not a route of {api}")
        for key in routes:
            if key.startswith("POST ") and not (settings.get(key) or {}).get("ThrottlingRateLimit"):
                out.append(f"{name}: route '{key}' has no RouteSettings throttling of its own")
    return out


ADMIN_ROUTE_PREFIX = "/api/admin/"


def every_admin_route_requires_the_admin_scope_and_no_other_route_does(t: Template) -> list[str]:
    """API Gateway refuses (403) a token without AdminScope on every /api/admin/ route, before the
    admin function runs; no other route asks for a scope (a user's token has none); the admin
    function checks the same scope (ADMIN_SCOPE) as defence in depth."""
    out = []
    if "AdminScope" not in t.get("Parameters", {}):
        out.append("Parameters: AdminScope is missing")
    admin_functions: set[str] = set()
    for key, (name, route) in http_routes(t).items():
        p = props(route)
        scopes = p.get("AuthorizationScopes")
        path = key.split(" ", 1)[-1]
        if path.startswith(ADMIN_ROUTE_PREFIX):
            if p.get("AuthorizationType") != "JWT":
                out.append(f"{name}: admin route '{key}' is not behind the JWT authorizer")
            if scopes != [{"Ref": "AdminScope"}]:
                out.append(f"{name}: admin route '{key}' has AuthorizationScopes {scopes!r}, not [!Ref AdminScope]")
            target = p.get("Target")
            sub = target.get("Fn::Sub") if isinstance(target, dict) else target
            integration_id = str(sub or "").removeprefix("integrations/").strip("${}")
            integration = props(t["Resources"].get(integration_id, {}))
            fn = ref_target(integration.get("IntegrationUri"))
            if fn:
                admin_functions.add(fn)
        elif scopes:
            out.append(f"{name}: route '{key}' is not an admin route but has AuthorizationScopes {scopes!r}")
    fns = functions(t)
    for fn in sorted(admin_functions):
        env = function_setting(t, fns.get(fn, {}), "Environment", {}) or {}
        if (env.get("Variables") or {}).get("ADMIN_SCOPE") != {"Ref": "AdminScope"}:
            out.append(f"{fn}: serves admin routes but its ADMIN_SCOPE is not !Ref AdminScope")
    if not admin_functions:
        out.append("no admin route reaches a function")
    return out
