"""The template's invariants: properties of infra/template.yaml that must hold on every change.

Each invariant is a function from the decoded template (cfn-lint's decoder: `!Ref` and friends
become `{"Ref": ...}` dicts) to a list of violations; a violation names the resource and what is
wrong. `infra/tests/test_template.py` runs every one against the real template, and against
templates broken on purpose to show each check can fail.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable

Template = dict[str, Any]

# IAM actions whose Resource must be "*" (AWS offers no resource-level permission for them).
STAR_RESOURCE_ACTIONS = {
    "cloudwatch:PutMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
REDRIVE_RECEIVES = 3
VISIBILITY_FACTOR = 6
SQS_DEFAULT_RETENTION = 345600  # seconds (4 days), AWS's default MessageRetentionPeriod
SQS_MAX_RETENTION = 1209600  # seconds (14 days), the most MessageRetentionPeriod allows
# Where originals live (the EventBridge rule's key prefix): nothing under it may expire.
ORIGINALS_PREFIX = "originals/"
# A DLQ's letters: visible ones and the ones a reader (the sweeper's peek) holds in flight.
DLQ_LETTER_METRICS = ("ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible")
# SAM function events that EventBridge delivers (asynchronously): each needs a dead-letter target.
EVENTBRIDGE_EVENT_TYPES = {"Schedule", "ScheduleV2", "EventBridgeRule", "CloudWatchEvent"}
SQS_DEFAULT_VISIBILITY = 30


# ------------------------------------------------------------------ helpers
def resources(t: Template, kind: str) -> dict[str, dict]:
    return {k: v for k, v in t.get("Resources", {}).items() if v.get("Type") == kind}


def props(res: dict) -> dict:
    return res.get("Properties", {}) or {}


def resolve(t: Template, node: Any) -> Any:
    """A `Ref` to a parameter becomes its default; anything else is returned as is."""
    if isinstance(node, dict) and set(node) == {"Ref"}:
        param = t.get("Parameters", {}).get(node["Ref"])
        if param is not None:
            return param.get("Default")
    return node


def ref_target(node: Any) -> str | None:
    """Logical id named by `!Ref X` or `!GetAtt X.Attr`."""
    if isinstance(node, dict):
        if "Ref" in node:
            return node["Ref"]
        if "Fn::GetAtt" in node:
            att = node["Fn::GetAtt"]
            return att[0] if isinstance(att, list) else str(att).split(".")[0]
    return None


def function_setting(t: Template, fn: dict, key: str, default: Any = None) -> Any:
    value = props(fn).get(key, t.get("Globals", {}).get("Function", {}).get(key, default))
    return resolve(t, value)


def functions(t: Template) -> dict[str, dict]:
    found = resources(t, "AWS::Serverless::Function")
    found.update(resources(t, "AWS::Lambda::Function"))
    return found


def event_sources(t: Template) -> list[tuple[str, str, str, dict]]:
    """(function logical id, kind SQS/DynamoDB/Kinesis, source logical id, properties) for every
    SAM event and AWS::Lambda::EventSourceMapping."""
    found = []
    for name, fn in resources(t, "AWS::Serverless::Function").items():
        for ev in (props(fn).get("Events") or {}).values():
            kind = ev.get("Type")
            p = ev.get("Properties", {}) or {}
            if kind == "SQS":
                found.append((name, kind, ref_target(p.get("Queue")) or "?", p))
            elif kind in ("DynamoDB", "Kinesis"):
                found.append((name, kind, ref_target(p.get("Stream")) or "?", p))
    for name, esm in resources(t, "AWS::Lambda::EventSourceMapping").items():
        p = props(esm)
        src = ref_target(p.get("EventSourceArn")) or "?"
        kind = t.get("Resources", {}).get(src, {}).get("Type", "")
        found.append((ref_target(p.get("FunctionName")) or name, "SQS" if "SQS" in kind else "DynamoDB", src, p))
    return found


def eventbridge_events(t: Template) -> list[tuple[str, str, str, dict]]:
    """(function logical id, event logical id, event type, properties) for every SAM function
    event that EventBridge (rules or the scheduler) delivers."""
    found = []
    for name, fn in resources(t, "AWS::Serverless::Function").items():
        for ev_name, ev in (props(fn).get("Events") or {}).items():
            if ev.get("Type") in EVENTBRIDGE_EVENT_TYPES:
                found.append((name, ev_name, ev["Type"], ev.get("Properties", {}) or {}))
    return found


def policy_statements(t: Template) -> list[tuple[str, dict]]:
    """(owner logical id, statement) for every identity-policy statement in the template."""
    found = []

    def docs_of(owner: str, policies: Any) -> None:
        for pol in policies if isinstance(policies, list) else [policies]:
            if isinstance(pol, dict):
                doc = pol.get("PolicyDocument", pol)
                stmts = doc.get("Statement", []) if isinstance(doc, dict) else []
                for st in stmts if isinstance(stmts, list) else [stmts]:
                    found.append((owner, st))

    for name, fn in resources(t, "AWS::Serverless::Function").items():
        docs_of(name, props(fn).get("Policies", []))
    for name, role in resources(t, "AWS::IAM::Role").items():
        docs_of(name, props(role).get("Policies", []))
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name, pol in resources(t, kind).items():
            docs_of(name, {"PolicyDocument": props(pol).get("PolicyDocument", {})})
    return found


def as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x]


def alarms(t: Template) -> dict[str, dict]:
    return resources(t, "AWS::CloudWatch::Alarm")


def alarm_dimension(alarm: dict, dim: str) -> str | None:
    for d in props(alarm).get("Dimensions", []) or []:
        if d.get("Name") == dim:
            return ref_target(d.get("Value"))
    return None


# --------------------------------------------------------------- invariants
def visibility_is_at_least_six_times_the_consumer_timeout(t: Template) -> list[str]:
    out = []
    queues = resources(t, "AWS::SQS::Queue")
    for fn_name, kind, src, _ in event_sources(t):
        if kind != "SQS" or src not in queues:
            continue
        timeout = int(function_setting(t, functions(t)[fn_name], "Timeout", 3))
        vis = int(resolve(t, props(queues[src]).get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY)))
        if vis < VISIBILITY_FACTOR * timeout:
            out.append(f"{src}: VisibilityTimeout {vis} s < {VISIBILITY_FACTOR} x {fn_name}'s Timeout {timeout} s")
    return out


def every_consumed_queue_redrives_to_a_dlq_after_three_receives(t: Template) -> list[str]:
    out = []
    queues = resources(t, "AWS::SQS::Queue")
    for fn_name, kind, src, _ in event_sources(t):
        if kind != "SQS" or src not in queues:
            continue
        redrive = props(queues[src]).get("RedrivePolicy") or {}
        if ref_target(redrive.get("deadLetterTargetArn")) not in queues:
            out.append(f"{src} (consumed by {fn_name}): no RedrivePolicy to a dead-letter queue")
        elif int(redrive.get("maxReceiveCount", 0)) != REDRIVE_RECEIVES:
            out.append(f"{src}: maxReceiveCount {redrive.get('maxReceiveCount')}, expected {REDRIVE_RECEIVES}")
    return out


def retention(t: Template, queue: dict) -> int:
    return int(resolve(t, props(queue).get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION)))


def dlq_retention_exceeds_its_source_queue_retention_or_both_are_the_maximum(t: Template) -> list[str]:
    """A standard queue's message keeps its original enqueue time when it is dead-lettered, so a
    DLQ that keeps letters no longer than its source drops them early, unless both keep the
    14-day maximum (then a letter lives 14 days from its first enqueue, the most SQS allows)."""
    out = []
    queues = resources(t, "AWS::SQS::Queue")
    for name, q in queues.items():
        dlq = ref_target((props(q).get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
        if dlq not in queues:
            continue
        src_ret, dlq_ret = retention(t, q), retention(t, queues[dlq])
        if dlq_ret > src_ret or dlq_ret == src_ret == SQS_MAX_RETENTION:
            continue
        out.append(
            f"{dlq}: retention {dlq_ret} s is not longer than its source {name}'s {src_ret} s (equal is "
            f"allowed only at the {SQS_MAX_RETENTION} s maximum: a letter's age counts from its first enqueue)"
        )
    return out


def processing_queues_retain_messages_fourteen_days(t: Template) -> list[str]:
    """Every queue a function consumes keeps its messages the 14-day maximum: the default 4 days
    would drop jobs during a long outage or backlog, leaving rows nobody will ever process."""
    out = []
    queues = resources(t, "AWS::SQS::Queue")
    for fn_name, kind, src, _ in event_sources(t):
        if kind != "SQS" or src not in queues:
            continue
        ret = retention(t, queues[src])
        if ret != SQS_MAX_RETENTION:
            out.append(
                f"{src} (consumed by {fn_name}): MessageRetentionPeriod {ret} s, expected {SQS_MAX_RETENTION} s (14 days)"
            )
    return out


def every_sqs_and_stream_source_reports_batch_item_failures(t: Template) -> list[str]:
    out = []
    for fn_name, kind, src, p in event_sources(t):
        if "ReportBatchItemFailures" not in (p.get("FunctionResponseTypes") or []):
            out.append(f"{fn_name}: its {kind} source {src} lacks FunctionResponseTypes: [ReportBatchItemFailures]")
    return out


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


def every_bucket_aborts_incomplete_multipart_uploads(t: Template) -> list[str]:
    out = []
    for name, b in resources(t, "AWS::S3::Bucket").items():
        rules = (props(b).get("LifecycleConfiguration") or {}).get("Rules", [])
        if not any(r.get("Status") == "Enabled" and r.get("AbortIncompleteMultipartUpload") for r in rules):
            out.append(f"{name}: no enabled lifecycle rule with AbortIncompleteMultipartUpload")
    return out


def lifecycle_rule_prefixes(rule: dict) -> list[str]:
    """The key prefixes an S3 lifecycle rule applies to ("" = the whole bucket). A rule filtered
    only by tags or object size applies under every prefix."""
    filt = rule.get("Filter") or {}
    prefix = rule.get("Prefix", filt.get("Prefix", (filt.get("And") or {}).get("Prefix")))
    return [prefix if isinstance(prefix, str) else ""]


def no_lifecycle_rule_expires_anything_under_originals(t: Template) -> list[str]:
    """The original processing pinned (the row names its version) must never expire: when a later
    version of the key is left current (its event dead-lettered, its deletion failed) the pinned
    version is non-current, and a non-current expiry covering originals/ would delete it."""
    out = []
    expiring = ("NoncurrentVersionExpiration", "NoncurrentVersionExpirationInDays", "ExpirationInDays", "ExpirationDate")
    for name, b in resources(t, "AWS::S3::Bucket").items():
        for rule in (props(b).get("LifecycleConfiguration") or {}).get("Rules", []):
            if rule.get("Status") != "Enabled":
                continue
            what = [k for k in expiring if rule.get(k) not in (None, "", {})]
            if not what:
                continue
            for prefix in lifecycle_rule_prefixes(rule):
                if ORIGINALS_PREFIX.startswith(prefix) or prefix.startswith(ORIGINALS_PREFIX):
                    scope = f"prefix '{prefix}'" if prefix else "the whole bucket"
                    out.append(
                        f"{name}: lifecycle rule '{rule.get('Id', '?')}' ({', '.join(what)}) applies to "
                        f"{ORIGINALS_PREFIX} ({scope}): it would expire pinned originals"
                    )
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


def http_routes(t: Template) -> dict[str, tuple[str, dict]]:
    """Route key -> (route logical id, route) for routes of HTTP APIs."""
    apis = {k for k, v in resources(t, "AWS::ApiGatewayV2::Api").items() if props(v).get("ProtocolType") == "HTTP"}
    return {
        props(r).get("RouteKey"): (name, r)
        for name, r in resources(t, "AWS::ApiGatewayV2::Route").items()
        if ref_target(props(r).get("ApiId")) in apis
    }


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


# What each API's access log line must say, by protocol: who, what, when, the outcome and why it
# failed. HTTP: the authorizer's verified `sub`. WebSocket: $connect is open at the gateway (the
# ws function verifies the token and logs the owner), so the connection id joins the two.
ACCESS_LOG_FIELDS = {
    "HTTP": {"requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
             "requestTime": "$context.requestTime", "routeKey": "$context.routeKey",
             "status": "$context.status", "sub": "$context.authorizer.claims.sub",
             "integrationError": "$context.integrationErrorMessage",
             "integrationLatency": "$context.integration.latency"},
    "WEBSOCKET": {"requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
                  "requestTime": "$context.requestTime", "routeKey": "$context.routeKey",
                  "status": "$context.status", "connectionId": "$context.connectionId",
                  "integrationError": "$context.integration.error",
                  "integrationLatency": "$context.integration.latency"},
}
# Variables that could put a secret in the logs: headers (Authorization), query strings (the
# WebSocket token), bodies, any claim but `sub`.
ACCESS_LOG_FORBIDDEN = re.compile(
    r"header|querystring|authorization|token|\$input|\$request\.|override|"
    r"\$context\.authorizer\.claims\.(?!sub\b)", re.IGNORECASE)


def every_api_stage_writes_json_access_logs_to_a_group_with_retention(t: Template) -> list[str]:
    import json  # here, not at the top: keeps this check's additions in one place

    out = []
    apis = resources(t, "AWS::ApiGatewayV2::Api")
    groups = resources(t, "AWS::Logs::LogGroup")
    for name, stage in resources(t, "AWS::ApiGatewayV2::Stage").items():
        p = props(stage)
        protocol = props(apis.get(ref_target(p.get("ApiId")), {})).get("ProtocolType")
        settings = p.get("AccessLogSettings") or {}
        group = ref_target(settings.get("DestinationArn"))
        if not settings:
            out.append(f"{name}: no AccessLogSettings (nobody could tell who called what)")
            continue
        if group not in groups:
            out.append(f"{name}: access logs go to {settings.get('DestinationArn')!r}, not a log group of the template")
        elif resolve(t, props(groups[group]).get("RetentionInDays")) in (None, "", 0):
            out.append(f"{name}: its access log group {group} has no RetentionInDays (logs kept forever)")
        fmt = settings.get("Format")
        try:
            fields = json.loads(fmt) if isinstance(fmt, str) else None
        except ValueError:
            fields = None
        if not isinstance(fields, dict):
            out.append(f"{name}: access log Format is not a JSON object")
            continue
        for key, var in ACCESS_LOG_FIELDS.get(protocol, {}).items():
            if fields.get(key) != var:
                out.append(f"{name}: access log field {key!r} is {fields.get(key)!r}, not {var!r}")
        for key, var in fields.items():
            if ACCESS_LOG_FORBIDDEN.search(str(var)):
                out.append(f"{name}: access log field {key!r} logs {var!r}, which may carry a secret")
    return out


def every_sqs_source_caps_its_concurrency(t: Template) -> list[str]:
    out = []
    for fn_name, kind, src, p in event_sources(t):
        if kind == "SQS" and not (p.get("ScalingConfig") or {}).get("MaximumConcurrency"):
            out.append(f"{fn_name}: its SQS source {src} has no ScalingConfig.MaximumConcurrency")
    return out


# Capacity (docs/ARCHITECTURE.md, "Capacity"): a stage needs
#   rate x measured time per image x CPU share x headroom
# concurrent invocations at the design point (Little's law), where the time is the median
# Lambda time per image of the design mix (1280-2560 px originals) that `make proof` measured on
# one x86_64 core (RELIABILITY.md), and the CPU share scales it to the function's memory (Lambda
# gives one whole vCPU at 1769 MB, proportionally less below).
DESIGN_RATE = 100  # uploads per second
DESIGN_MIX_PX = (1280, 1920, 2560)
FULL_VCPU_MB = 1769
HEADROOM = 1.5
STAGE_FUNCTIONS = {"ThumbnailFunction": "thumbnail", "VariantFunction": "variant"}
RELIABILITY = Path(__file__).resolve().parents[2] / "RELIABILITY.md"


def measured_stage_ms(text: str) -> dict[str, float]:
    """The mean over the design mix of each stage's median Lambda time per image (ms), from the
    scale model's "Lambda time per image" figure; empty when the figure is missing."""
    row = next((line for line in text.splitlines() if "Lambda time per image" in line), "")
    per_class = {
        int(px): (float(thumb), float(variant))
        for px, thumb, variant in re.findall(r"(\d+) px: thumbnail (\d+(?:\.\d+)?) ms, variant (\d+(?:\.\d+)?) ms", row)
    }
    mix = [per_class[px] for px in DESIGN_MIX_PX if px in per_class]
    if len(mix) != len(DESIGN_MIX_PX):
        return {}
    return {
        "thumbnail": sum(m[0] for m in mix) / len(mix),
        "variant": sum(m[1] for m in mix) / len(mix),
    }


def needed_concurrency(stage_ms: float, memory_mb: int) -> int:
    cpu_share = min(1.0, memory_mb / FULL_VCPU_MB)
    return math.ceil(DESIGN_RATE * stage_ms / 1000 / cpu_share * HEADROOM)


def processor_concurrency_defaults_cover_the_design_point(t: Template, measured: str | None = None) -> list[str]:
    text = measured if measured is not None else (RELIABILITY.read_text() if RELIABILITY.exists() else "")
    times = measured_stage_ms(text)
    if not times:
        return ["RELIABILITY.md has no 'Lambda time per image' figure for 1280, 1920 and 2560 px (run `make proof`)"]
    out = []
    seen = set()
    for fn_name, kind, src, p in event_sources(t):
        stage = STAGE_FUNCTIONS.get(fn_name)
        if kind != "SQS" or stage is None:
            continue
        seen.add(fn_name)
        memory = int(function_setting(t, functions(t)[fn_name], "MemorySize", 128))
        cap = resolve(t, (p.get("ScalingConfig") or {}).get("MaximumConcurrency"))
        need = needed_concurrency(times[stage], memory)
        if not isinstance(cap, int) or cap < need:
            out.append(
                f"{fn_name}: MaximumConcurrency {cap} is below the {need} its stage needs at {DESIGN_RATE} uploads/s "
                f"({times[stage]:.0f} ms per image at {memory} MB)"
            )
        reserved = props(functions(t)[fn_name]).get("ReservedConcurrentExecutions")
        if isinstance(reserved, dict) and "Fn::If" in reserved:
            reserved = reserved["Fn::If"][1]
        reserved = resolve(t, reserved)
        if reserved is not None and reserved != cap:
            out.append(f"{fn_name}: reserved concurrency {reserved} differs from its source's MaximumConcurrency {cap}")
    for missing in sorted(set(STAGE_FUNCTIONS) - seen):
        out.append(f"{missing}: no SQS source found to check its capacity")
    return out


def every_stream_source_has_an_on_failure_destination(t: Template) -> list[str]:
    out = []
    for fn_name, kind, src, p in event_sources(t):
        if kind in ("DynamoDB", "Kinesis"):
            dest = ((p.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            if not dest:
                out.append(f"{fn_name}: its stream source {src} has no DestinationConfig.OnFailure")
    return out


def every_event_rule_target_has_a_dead_letter_queue(t: Template) -> list[str]:
    out = []
    for name, rule in resources(t, "AWS::Events::Rule").items():
        for target in props(rule).get("Targets", []):
            if not (target.get("DeadLetterConfig") or {}).get("Arn"):
                out.append(f"{name}: target '{target.get('Id')}' has no DeadLetterConfig")
    return out


def every_scheduled_or_rule_event_of_a_function_has_a_dead_letter_queue(t: Template) -> list[str]:
    """A SAM Schedule / EventBridgeRule event is a rule target too: without DeadLetterConfig an
    invocation EventBridge cannot deliver is dropped. The queue must be the template's own (Arn),
    not one SAM generates (Type: SQS), so that it is encrypted and its depth alarms."""
    out = []
    queues = resources(t, "AWS::SQS::Queue")
    for fn_name, ev_name, kind, p in eventbridge_events(t):
        dlq = p.get("DeadLetterConfig") or {}
        if not dlq:
            out.append(f"{fn_name}: its {kind} event {ev_name} has no DeadLetterConfig")
        elif ref_target(dlq.get("Arn")) not in queues:
            out.append(
                f"{fn_name}: the DeadLetterConfig of its {kind} event {ev_name} is not Arn: !GetAtt <a queue "
                "of this template> (a SAM-generated queue has no alarm and no encryption)"
            )
    return out


def log_group_of(t: Template, fn_name: str, fn: dict) -> tuple[str | None, str]:
    """(logical id of the AWS::Logs::LogGroup a function logs to, how it was found)."""
    groups = resources(t, "AWS::Logs::LogGroup")
    logging = dict(t.get("Globals", {}).get("Function", {}).get("LoggingConfig") or {})
    logging.update(props(fn).get("LoggingConfig") or {})
    target = ref_target(logging.get("LogGroup"))
    if target in groups:
        return target, "LoggingConfig.LogGroup"
    # The other form: a group named after the function, /aws/lambda/<function name>.
    for name, g in groups.items():
        gname = props(g).get("LogGroupName")
        sub = gname.get("Fn::Sub") if isinstance(gname, dict) else None
        if sub == f"/aws/lambda/${{{fn_name}}}":
            return name, "LogGroupName /aws/lambda/${" + fn_name + "}"
    return None, ""


def every_function_logs_to_its_own_log_group_with_retention(t: Template) -> list[str]:
    """Lambda's own log groups (created on first use) keep logs forever: each function names a
    group of the template with RetentionInDays."""
    out = []
    groups = resources(t, "AWS::Logs::LogGroup")
    owners: dict[str, str] = {}
    for name, fn in functions(t).items():
        group, _ = log_group_of(t, name, fn)
        if group is None:
            out.append(
                f"{name}: logs to no AWS::Logs::LogGroup of the template (set LoggingConfig.LogGroup: "
                "!Ref <its group>); Lambda's auto-created group never expires"
            )
            continue
        retention = resolve(t, props(groups[group]).get("RetentionInDays"))
        if retention in (None, "", 0):
            out.append(f"{name}: its log group {group} has no RetentionInDays (logs kept forever)")
        if group in owners:
            out.append(f"{name}: shares its log group {group} with {owners[group]}")
        owners[group] = name
    return out


def every_function_has_error_and_throttle_alarms(t: Template) -> list[str]:
    out = []
    watched: dict[str, set[str]] = {}
    for alarm in alarms(t).values():
        p = props(alarm)
        fn = alarm_dimension(alarm, "FunctionName")
        if p.get("Namespace") == "AWS/Lambda" and fn:
            watched.setdefault(fn, set()).add(p.get("MetricName"))
    for name in functions(t):
        missing = {"Errors", "Throttles"} - watched.get(name, set())
        if missing:
            out.append(f"{name}: no alarm on {' and '.join(sorted(missing))}")
    return out


def dead_letter_queues(t: Template) -> set[str]:
    """Queues that collect failures: redrive targets, rule-target DLQs, on-failure destinations."""
    found = set()
    for q in resources(t, "AWS::SQS::Queue").values():
        dlq = ref_target((props(q).get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
        if dlq:
            found.add(dlq)
    for rule in resources(t, "AWS::Events::Rule").values():
        for target in props(rule).get("Targets", []):
            dlq = ref_target((target.get("DeadLetterConfig") or {}).get("Arn"))
            if dlq:
                found.add(dlq)
    for _, _, _, p in event_sources(t):
        dest = ref_target(((p.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"))
        if dest:
            found.add(dest)
    for _, _, _, p in eventbridge_events(t):
        dlq = ref_target((p.get("DeadLetterConfig") or {}).get("Arn"))
        if dlq:
            found.add(dlq)
    return found


def alarm_queue_metrics(alarm: dict) -> dict[str, tuple[str, str | None]]:
    """Metric id -> (AWS/SQS metric name, queue logical id) for every SQS metric an alarm reads:
    its single metric (id "") or each MetricStat of its metric math."""
    p = props(alarm)
    found = {}
    if p.get("Namespace") == "AWS/SQS":
        found[""] = (p.get("MetricName"), alarm_dimension(alarm, "QueueName"))
    for m in p.get("Metrics") or []:
        metric = (m.get("MetricStat") or {}).get("Metric") or {}
        if metric.get("Namespace") == "AWS/SQS":
            queue = next((ref_target(d.get("Value")) for d in metric.get("Dimensions") or [] if d.get("Name") == "QueueName"), None)
            found[m.get("Id", "?")] = (metric.get("MetricName"), queue)
    return found


def alarm_expression_inputs(alarm: dict, expression_id: str) -> set[str]:
    """The metric ids an expression of the alarm reads, following the expressions it names."""
    by_id = {m.get("Id"): m for m in props(alarm).get("Metrics") or []}
    seen, todo = set(), [expression_id]
    while todo:
        mid = todo.pop()
        if mid in seen or mid not in by_id:
            continue
        seen.add(mid)
        # Metric math ids start with a lower-case letter; functions and keywords are upper case.
        todo += re.findall(r"\b[a-z][A-Za-z0-9_]*\b", by_id[mid].get("Expression") or "")
    return {m for m in seen if "MetricStat" in by_id[m]}


def increase_alarm_problem(t: Template, alarm: dict, dlq: str) -> str | None:
    """Why an alarm on a DLQ is not a "new letters" alarm (None if it is one): it must return a
    DIFF / RATE of the letters held (visible + not visible, both of this queue), fire on any
    increase and treat missing data as not breaching, so it returns to OK when no letter comes."""
    p = props(alarm)
    returned = [m for m in p.get("Metrics") or [] if m.get("ReturnData", True) and m.get("Expression")]
    if len(returned) != 1:
        return "not metric math returning one expression (a depth alarm stays in ALARM while letters are kept)"
    expr = re.sub(r"\s+", "", returned[0]["Expression"])
    if not re.fullmatch(r"(DIFF|RATE)\(.*\)", expr):
        return f"returns '{returned[0]['Expression']}', not a DIFF(...) or RATE(...) of the letters held"
    inputs = alarm_expression_inputs(alarm, returned[0].get("Id"))
    read = {alarm_queue_metrics(alarm).get(i, (None, None)) for i in inputs}
    missing = [m for m in DLQ_LETTER_METRICS if (m, dlq) not in read]
    if missing:
        return f"its expression does not read {' and '.join(missing)} of {dlq} (the sweeper's peeks move letters between the two)"
    others = sorted(f"{m} of {q}" for m, q in read if (m, q) not in {(x, dlq) for x in DLQ_LETTER_METRICS})
    if others:
        return f"its expression also reads {', '.join(others)}"
    # One letter arriving mid-minute may show as two per-minute increases of 0.5 (averages).
    op, threshold = p.get("ComparisonOperator"), float(resolve(t, p.get("Threshold", -1)))
    fires_on_increase = (op == "GreaterThanThreshold" and 0 <= threshold < 0.5) or (
        op == "GreaterThanOrEqualToThreshold" and 0 < threshold <= 0.5
    )
    if not fires_on_increase:
        return f"{op} {threshold} does not fire on an increase of one letter"
    if p.get("TreatMissingData") != "notBreaching":
        return f"TreatMissingData {p.get('TreatMissingData')!r}, not notBreaching (a quiet queue must return to OK)"
    return None


def every_dead_letter_queue_alarms_on_new_letters(t: Template) -> list[str]:
    """Letters stay in the DLQs (for the operators), so each DLQ's alarm fires on an increase of
    the letters it holds and returns to OK, ready for the next one; an alarm on depth would stay
    in ALARM after the first letter and notify nobody of the later ones. Every alarm that reads a
    DLQ must be such an alarm, and every DLQ must have one."""
    out = []
    dlqs = dead_letter_queues(t)
    covered = set()
    for name, a in sorted(alarms(t).items()):
        for dlq in sorted({q for _, q in alarm_queue_metrics(a).values() if q in dlqs}):
            problem = increase_alarm_problem(t, a, dlq)
            if problem:
                out.append(f"{dlq}: its alarm {name} is not a new-letters (increase) alarm: {problem}")
            else:
                covered.add(dlq)
    for dlq in sorted(dlqs - covered):
        if not any(o.startswith(f"{dlq}:") for o in out):
            out.append(f"{dlq}: no alarm on new letters (an increase of ApproximateNumberOfMessagesVisible + NotVisible)")
    return out


def kms_key_of(t: Template, node: Any) -> tuple[str | None, str]:
    """(logical id of the template's AWS::KMS::Key a KmsMasterKeyId names, how it was named)."""
    keys = resources(t, "AWS::KMS::Key")
    target = ref_target(node)
    if target in keys:
        return target, f"!Ref/!GetAtt {target}"
    aliases = resources(t, "AWS::KMS::Alias")
    if target in aliases:
        key = ref_target(props(aliases[target]).get("TargetKeyId"))
        return (key if key in keys else None), f"alias {target}"
    if isinstance(node, str):
        for alias in aliases.values():
            if props(alias).get("AliasName") == node:
                key = ref_target(props(alias).get("TargetKeyId"))
                return (key if key in keys else None), node
        return None, node
    return None, repr(node)


def key_lets_cloudwatch_publish(key: dict) -> str | None:
    """Why CloudWatch alarms could not use the key to publish (None if they can)."""
    if props(key).get("Enabled") is False:
        return "the key is disabled"
    needed = {"kms:Decrypt", "kms:GenerateDataKey"}
    granted: set[str] = set()
    for st in as_list((props(key).get("KeyPolicy") or {}).get("Statement", [])):
        if st.get("Effect") != "Allow":
            continue
        services = as_list((st.get("Principal") or {}).get("Service", [])) if isinstance(st.get("Principal"), dict) else []
        if "cloudwatch.amazonaws.com" not in services:
            continue
        for action in as_list(st.get("Action", [])):
            if action in ("kms:*", "kms:GenerateDataKey*"):
                granted.add("kms:GenerateDataKey")
            if action in ("kms:*", "kms:Decrypt"):
                granted.add("kms:Decrypt")
            if action == "kms:GenerateDataKey":
                granted.add(action)
    missing = sorted(needed - granted)
    if missing:
        return f"its key policy does not allow cloudwatch.amazonaws.com {' and '.join(m + ('*' if m.endswith('DataKey') else '') for m in missing)}"
    return None


def every_topic_an_alarm_notifies_is_unencrypted_or_uses_a_key_cloudwatch_may_use(t: Template) -> list[str]:
    """CloudWatch publishes an alarm to an encrypted topic only with kms:Decrypt and
    kms:GenerateDataKey* on the topic's key, granted to cloudwatch.amazonaws.com by the key's
    policy; an AWS managed key (alias/aws/sns) never grants it, so every notification is dropped."""
    out = []
    topics = resources(t, "AWS::SNS::Topic")
    keys = resources(t, "AWS::KMS::Key")
    notified = set()
    for a in alarms(t).values():
        p = props(a)
        for action in (p.get("AlarmActions") or []) + (p.get("OKActions") or []) + (p.get("InsufficientDataActions") or []):
            if ref_target(action) in topics:
                notified.add(ref_target(action))
    for name in sorted(notified):
        key_id = props(topics[name]).get("KmsMasterKeyId")
        if key_id in (None, ""):
            continue
        key, named = kms_key_of(t, key_id)
        if key is None:
            out.append(
                f"{name}: alarms notify it, but it is encrypted with {named}, not a key of this template whose policy "
                "lets cloudwatch.amazonaws.com use it (the AWS managed alias/aws/sns never does): no alarm would arrive"
            )
            continue
        problem = key_lets_cloudwatch_publish(keys[key])
        if problem:
            out.append(f"{name}: alarms notify it, but its key {key} cannot be used by CloudWatch: {problem}")
    return out


def every_consumed_queue_alarms_on_the_age_of_its_oldest_message(t: Template) -> list[str]:
    out = []
    for fn_name, kind, src, _ in event_sources(t):
        if kind != "SQS":
            continue
        if not any(
            props(a).get("MetricName") == "ApproximateAgeOfOldestMessage" and alarm_dimension(a, "QueueName") == src
            for a in alarms(t).values()
        ):
            out.append(f"{src} (consumed by {fn_name}): no alarm on ApproximateAgeOfOldestMessage")
    return out


def every_breaker_stage_alarms_when_its_breaker_opens(t: Template) -> list[str]:
    """Queue consumers that carry breaker settings (the processing stages) must have a
    BreakerOpened alarm for their stage."""
    out = []
    stages = {
        (props(a).get("Dimensions") or [{}])[0].get("Value")
        for a in alarms(t).values()
        if props(a).get("MetricName") == "BreakerOpened"
    }
    consumers = {fn for fn, kind, _, _ in event_sources(t) if kind == "SQS"}
    for name, fn in resources(t, "AWS::Serverless::Function").items():
        env = (props(fn).get("Environment") or {}).get("Variables") or {}
        if "BREAKER_THRESHOLD" in env and name in consumers:
            binary = (fn.get("Metadata") or {}).get("BuildProperties", {}).get("Binary", name)
            if binary not in stages:
                out.append(f"{name}: has a circuit breaker but no BreakerOpened alarm for Stage={binary}")
    return out


def every_alarm_notifies_the_alarm_topic(t: Template) -> list[str]:
    out = []
    topics = set(resources(t, "AWS::SNS::Topic"))
    for name, a in alarms(t).items():
        if not any(ref_target(x) in topics for x in props(a).get("AlarmActions", []) or []):
            out.append(f"{name}: AlarmActions do not include an SNS topic of the stack")
    return out


def every_queue_is_encrypted(t: Template) -> list[str]:
    return [
        f"{name}: neither SqsManagedSseEnabled nor KmsMasterKeyId"
        for name, q in resources(t, "AWS::SQS::Queue").items()
        if not (props(q).get("SqsManagedSseEnabled") or props(q).get("KmsMasterKeyId"))
    ]


def every_queue_a_function_is_given_is_in_its_policy(t: Template) -> list[str]:
    """A queue URL in a function's environment (`!Ref <queue>`) is there to be used: the
    function's policy must name that queue's ARN, or its first call fails with AccessDenied."""
    out = []
    queues = resources(t, "AWS::SQS::Queue")
    statements = policy_statements(t)
    for name, fn in sorted(functions(t).items()):
        env = (props(fn).get("Environment") or {}).get("Variables") or {}
        granted = {
            ref_target(r)
            for owner, st in statements
            if owner == name and st.get("Effect") == "Allow"
            and any(str(a).startswith("sqs:") for a in as_list(st.get("Action", [])))
            for r in as_list(st.get("Resource", []))
        }
        for var, value in sorted(env.items()):
            queue = value.get("Ref") if isinstance(value, dict) and set(value) == {"Ref"} else None
            if queue in queues and queue not in granted:
                out.append(f"{name}: its environment names {queue} ({var}), but its policy grants no sqs: action on it")
    return out


def the_template_has_a_dashboard(t: Template) -> list[str]:
    return [] if resources(t, "AWS::CloudWatch::Dashboard") else ["no AWS::CloudWatch::Dashboard"]


STATUS_SHARD_KEY = "status_key"
STATUS_SORT_KEY = "status_since"


def status_indexes_are_sharded_and_any_index_on_the_bare_status_can_be_dropped(t: Template) -> list[str]:
    """The images table's status index is keyed by the write-sharded `status_key` (a partition
    key with 4 values is the first write limit at 10x), sorted by `status_since` and projecting
    the keys only (so a row write that keeps the status does not write the index: at 100x an
    `ALL` projection sorted by `updated_at` rewrote each entry on every row write), and an index
    keyed by the bare `processing_status` exists only behind a condition (the old index, kept
    for one release)."""
    problems = []
    table = t.get("Resources", {}).get("ImagesTable")
    if table is None:
        return ["ImagesTable: missing"]
    found_sharded = False
    for gsi in as_list(props(table).get("GlobalSecondaryIndexes")):
        conditional = isinstance(gsi, dict) and "Fn::If" in gsi
        if conditional:
            gsi = gsi["Fn::If"][1]
        if not isinstance(gsi, dict):
            continue
        keys = {k.get("KeyType"): k.get("AttributeName") for k in as_list(gsi.get("KeySchema"))}
        name = gsi.get("IndexName")
        if keys.get("HASH") == "processing_status" and not conditional:
            problems.append(f"ImagesTable: index {name} is keyed by the bare processing_status and cannot be dropped")
        if keys.get("HASH") == STATUS_SHARD_KEY:
            if name != "by_status_v2" or keys.get("RANGE") != STATUS_SORT_KEY:
                problems.append(f"ImagesTable: index {name} on {STATUS_SHARD_KEY} must be by_status_v2 sorted by {STATUS_SORT_KEY}")
            elif (gsi.get("Projection") or {}).get("ProjectionType") != "KEYS_ONLY":
                problems.append("ImagesTable: by_status_v2 must project KEYS_ONLY (a projected attribute would rewrite the entry on every row write)")
            else:
                found_sharded = True
    if not found_sharded:
        problems.append(f"ImagesTable: no by_status_v2 index on {STATUS_SHARD_KEY}, {STATUS_SORT_KEY}")
    return problems


INVARIANTS: list[Callable[[Template], list[str]]] = [
    visibility_is_at_least_six_times_the_consumer_timeout,
    every_consumed_queue_redrives_to_a_dlq_after_three_receives,
    dlq_retention_exceeds_its_source_queue_retention_or_both_are_the_maximum,
    processing_queues_retain_messages_fourteen_days,
    every_sqs_and_stream_source_reports_batch_item_failures,
    no_star_resource_except_where_aws_requires_it,
    every_bucket_blocks_public_access,
    every_bucket_policy_denies_requests_without_tls,
    every_bucket_aborts_incomplete_multipart_uploads,
    no_lifecycle_rule_expires_anything_under_originals,
    allowed_origins_are_a_parameter_without_a_star,
    every_api_stage_throttles_and_every_post_route_has_its_own_limit,
    every_admin_route_requires_the_admin_scope_and_no_other_route_does,
    every_api_stage_writes_json_access_logs_to_a_group_with_retention,
    every_sqs_source_caps_its_concurrency,
    processor_concurrency_defaults_cover_the_design_point,
    every_stream_source_has_an_on_failure_destination,
    every_event_rule_target_has_a_dead_letter_queue,
    every_scheduled_or_rule_event_of_a_function_has_a_dead_letter_queue,
    every_function_logs_to_its_own_log_group_with_retention,
    every_function_has_error_and_throttle_alarms,
    every_dead_letter_queue_alarms_on_new_letters,
    every_consumed_queue_alarms_on_the_age_of_its_oldest_message,
    every_breaker_stage_alarms_when_its_breaker_opens,
    every_alarm_notifies_the_alarm_topic,
    every_topic_an_alarm_notifies_is_unencrypted_or_uses_a_key_cloudwatch_may_use,
    every_queue_is_encrypted,
    every_queue_a_function_is_given_is_in_its_policy,
    the_template_has_a_dashboard,
    status_indexes_are_sharded_and_any_index_on_the_bare_status_can_be_dropped,
]


def title(check: Callable) -> str:
    return re.sub(r"_", " ", check.__name__)
