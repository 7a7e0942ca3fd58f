"""What the invariants read of a decoded template (cfn-lint's decoder: `!Ref` and friends become
`{"Ref": ...}` dicts): resources by type, parameters resolved to their defaults, the targets of
references, functions and their event sources, policy statements, routes, alarms and the queues
that collect failures."""

from __future__ import annotations

from typing import Any

Template = dict[str, Any]

# SAM function events that EventBridge delivers (asynchronously): each needs a dead-letter target.
EVENTBRIDGE_EVENT_TYPES = {"Schedule", "ScheduleV2", "EventBridgeRule", "CloudWatchEvent"}


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


def consumed_queues(t: Template) -> list[tuple[str, str, dict, dict]]:
    """(function logical id, queue logical id, queue, event properties) for every SQS event source
    whose queue is a queue of the template."""
    queues = resources(t, "AWS::SQS::Queue")
    return [(fn, src, queues[src], p) for fn, kind, src, p in event_sources(t) if kind == "SQS" and src in queues]


def http_routes(t: Template) -> dict[str, tuple[str, dict]]:
    """Route key -> (route logical id, route) for routes of HTTP APIs."""
    apis = {k for k, v in resources(t, "AWS::ApiGatewayV2::Api").items() if props(v).get("ProtocolType") == "HTTP"}
    return {
        props(r).get("RouteKey"): (name, r)
        for name, r in resources(t, "AWS::ApiGatewayV2::Route").items()
        if ref_target(props(r).get("ApiId")) in apis
    }


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
