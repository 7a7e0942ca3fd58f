"""The template's invariants: properties of infra/template.yaml that must hold on every change.

Each invariant is a function from the decoded template (cfn-lint's decoder: `!Ref` and friends
become `{"Ref": ...}` dicts) to a list of violations; a violation names the resource and what is
wrong. `infra/tests/test_template.py` runs every one against the real template, and against
templates broken on purpose to show each check can fail.
"""

from __future__ import annotations

import re
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


def dlq_retention_exceeds_its_source_queue_retention(t: Template) -> list[str]:
    out = []
    queues = resources(t, "AWS::SQS::Queue")
    for name, q in queues.items():
        dlq = ref_target((props(q).get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
        if dlq not in queues:
            continue
        src_ret = int(resolve(t, props(q).get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION)))
        dlq_ret = int(resolve(t, props(queues[dlq]).get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION)))
        if dlq_ret <= src_ret:
            out.append(f"{dlq}: retention {dlq_ret} s is not longer than its source {name}'s {src_ret} s")
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


def every_sqs_source_caps_its_concurrency(t: Template) -> list[str]:
    out = []
    for fn_name, kind, src, p in event_sources(t):
        if kind == "SQS" and not (p.get("ScalingConfig") or {}).get("MaximumConcurrency"):
            out.append(f"{fn_name}: its SQS source {src} has no ScalingConfig.MaximumConcurrency")
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


def every_dead_letter_queue_alarms_when_not_empty(t: Template) -> list[str]:
    out = []
    for dlq in sorted(dead_letter_queues(t)):
        ok = any(
            props(a).get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and alarm_dimension(a, "QueueName") == dlq
            and props(a).get("ComparisonOperator") == "GreaterThanThreshold"
            and float(resolve(t, props(a).get("Threshold", 1))) == 0
            for a in alarms(t).values()
        )
        if not ok:
            out.append(f"{dlq}: no alarm on ApproximateNumberOfMessagesVisible > 0")
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


def the_template_has_a_dashboard(t: Template) -> list[str]:
    return [] if resources(t, "AWS::CloudWatch::Dashboard") else ["no AWS::CloudWatch::Dashboard"]


INVARIANTS: list[Callable[[Template], list[str]]] = [
    visibility_is_at_least_six_times_the_consumer_timeout,
    every_consumed_queue_redrives_to_a_dlq_after_three_receives,
    dlq_retention_exceeds_its_source_queue_retention,
    every_sqs_and_stream_source_reports_batch_item_failures,
    no_star_resource_except_where_aws_requires_it,
    every_bucket_blocks_public_access,
    every_bucket_policy_denies_requests_without_tls,
    every_bucket_aborts_incomplete_multipart_uploads,
    allowed_origins_are_a_parameter_without_a_star,
    every_api_stage_throttles_and_every_post_route_has_its_own_limit,
    every_sqs_source_caps_its_concurrency,
    every_stream_source_has_an_on_failure_destination,
    every_event_rule_target_has_a_dead_letter_queue,
    every_scheduled_or_rule_event_of_a_function_has_a_dead_letter_queue,
    every_function_logs_to_its_own_log_group_with_retention,
    every_function_has_error_and_throttle_alarms,
    every_dead_letter_queue_alarms_when_not_empty,
    every_consumed_queue_alarms_on_the_age_of_its_oldest_message,
    every_breaker_stage_alarms_when_its_breaker_opens,
    every_alarm_notifies_the_alarm_topic,
    every_queue_is_encrypted,
    the_template_has_a_dashboard,
]


def title(check: Callable) -> str:
    return re.sub(r"_", " ", check.__name__)
