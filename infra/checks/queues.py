"""Invariants of the queues and event sources: visibility against the consumer's timeout, redrive
to a dead-letter queue, retention, partial batch responses, concurrency caps, a dead-letter target
for every asynchronous event, encryption, and a function's access to the queues it is given."""

from __future__ import annotations

from checks.template import (Template, as_list, consumed_queues, event_sources, eventbridge_events, function_setting,
                             functions, policy_statements, props, ref_target, resolve, resources)

REDRIVE_RECEIVES = 3
VISIBILITY_FACTOR = 6
SQS_DEFAULT_RETENTION = 345600  # seconds (4 days), AWS's default MessageRetentionPeriod
SQS_MAX_RETENTION = 1209600  # seconds (14 days), the most MessageRetentionPeriod allows

SQS_DEFAULT_VISIBILITY = 30


def visibility_is_at_least_six_times_the_consumer_timeout(t: Template) -> list[str]:
    out = []
    for fn_name, src, queue, _ in consumed_queues(t):
        timeout = int(function_setting(t, functions(t)[fn_name], "Timeout", 3))
        vis = int(resolve(t, props(queue).get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY)))
        if vis < VISIBILITY_FACTOR * timeout:
            out.append(f"{src}: VisibilityTimeout {vis} s < {VISIBILITY_FACTOR} x {fn_name}'s Timeout {timeout} s")
    return out


def every_consumed_queue_redrives_to_a_dlq_after_three_receives(t: Template) -> list[str]:
    out = []
    queues = resources(t, "AWS::SQS::Queue")
    for fn_name, src, queue, _ in consumed_queues(t):
        redrive = props(queue).get("RedrivePolicy") or {}
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
    return [
        f"{src} (consumed by {fn_name}): MessageRetentionPeriod {ret} s, expected {SQS_MAX_RETENTION} s (14 days)"
        for fn_name, src, queue, _ in consumed_queues(t)
        if (ret := retention(t, queue)) != SQS_MAX_RETENTION
    ]


def every_sqs_and_stream_source_reports_batch_item_failures(t: Template) -> list[str]:
    out = []
    for fn_name, kind, src, p in event_sources(t):
        if "ReportBatchItemFailures" not in (p.get("FunctionResponseTypes") or []):
            out.append(f"{fn_name}: its {kind} source {src} lacks FunctionResponseTypes: [ReportBatchItemFailures]")
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
