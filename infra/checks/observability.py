"""Invariants of what operators see: JSON access logs without secrets, a log group with retention
per function, alarms on errors, throttles, new dead letters, old messages and open breakers, all
notifying a topic CloudWatch can publish to, and a dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

from checks.template import (Template, alarm_dimension, alarm_queue_metrics, alarms, as_list, dead_letter_queues,
                             event_sources, functions, props, ref_target, resolve, resources)

# A DLQ's letters: visible ones and the ones a reader (the sweeper's peek) holds in flight.
DLQ_LETTER_METRICS = ("ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible")


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


def the_template_has_a_dashboard(t: Template) -> list[str]:
    return [] if resources(t, "AWS::CloudWatch::Dashboard") else ["no AWS::CloudWatch::Dashboard"]
