"""Smoke checks of the deployed resources' wiring: the fan-out of originals to the processing
queues, their redrive and retention, alarms, the bucket's lifecycle, tables, function settings."""

from __future__ import annotations

import json
import time
import uuid

from smoke_checks import ENV, client


def check_an_original_fans_out_to_both_processing_queues():
    """S3 Object Created under originals/ -> EventBridge rule -> thumbnails and variants queues.

    The processors' event source mappings are paused meanwhile so the messages stay readable."""
    lam, sqs, s3 = client("lambda"), client("sqs"), client("s3")
    queues = {
        "thumbnails": ENV["SAFELIGHT_THUMBNAILS_QUEUE_URL"],
        "variants": ENV["SAFELIGHT_VARIANTS_QUEUE_URL"],
    }
    arns = {sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for u in queues.values()}
    mappings = [m for m in lam.list_event_source_mappings()["EventSourceMappings"]
                if m.get("EventSourceArn") in arns]
    for m in mappings:
        lam.update_event_source_mapping(UUID=m["UUID"], Enabled=False)
    try:
        time.sleep(1.0)  # let an in-flight poll finish
        key = f"originals/smoke/{uuid.uuid4().hex}"
        other = f"thumbnails/smoke/{uuid.uuid4().hex}.jpg"  # outside originals/: must not fan out
        s3.put_object(Bucket=ENV["SAFELIGHT_BUCKET"], Key=other, Body=b"x")
        s3.put_object(Bucket=ENV["SAFELIGHT_BUCKET"], Key=key, Body=b"\xff\xd8\xff\xe0smoke")
        for name, url in queues.items():
            keys: list[str] = []
            deadline = time.monotonic() + 10
            while key not in keys and time.monotonic() < deadline:
                resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                for msg in resp.get("Messages", []):
                    body = json.loads(msg["Body"])
                    got = body.get("detail", {}).get("object", {}).get("key")
                    assert body.get("detail-type") == "Object Created", body
                    assert got != other, f"{name}: an object outside originals/ was routed"
                    keys.append(got)
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
            assert key in keys, f"{name}: no Object Created message for {key} (saw {keys})"
        s3.delete_object(Bucket=ENV["SAFELIGHT_BUCKET"], Key=key)
        s3.delete_object(Bucket=ENV["SAFELIGHT_BUCKET"], Key=other)
    finally:
        for m in mappings:
            lam.update_event_source_mapping(UUID=m["UUID"], Enabled=True)


def check_queues_redrive_to_their_dlq_after_three_receives():
    sqs = client("sqs")
    for q, dlq in (("THUMBNAILS", "THUMBNAILS_DLQ"), ("VARIANTS", "VARIANTS_DLQ")):
        attrs = sqs.get_queue_attributes(QueueUrl=ENV[f"SAFELIGHT_{q}_QUEUE_URL"], AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"])
        dlq_arn = sqs.get_queue_attributes(QueueUrl=ENV[f"SAFELIGHT_{dlq}_URL"],
                                           AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        assert int(redrive["maxReceiveCount"]) == 3 and redrive["deadLetterTargetArn"] == dlq_arn, redrive
        assert int(attrs["VisibilityTimeout"]) >= 6 * 30, attrs["VisibilityTimeout"]


def check_processing_queues_and_their_dlqs_keep_messages_14_days():
    sqs = client("sqs")
    for key in ("THUMBNAILS_QUEUE", "THUMBNAILS_DLQ", "VARIANTS_QUEUE", "VARIANTS_DLQ"):
        attrs = sqs.get_queue_attributes(QueueUrl=ENV[f"SAFELIGHT_{key}_URL"], AttributeNames=["MessageRetentionPeriod"])
        assert int(attrs["Attributes"]["MessageRetentionPeriod"]) == 1209600, (key, attrs["Attributes"])


def stack_resources(kind: str) -> dict[str, str]:
    """Logical id -> physical id of the stack's resources of one type."""
    res = client("cloudformation").describe_stack_resources(StackName=ENV["SAFELIGHT_STACK_NAME"])["StackResources"]
    return {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in res if r["ResourceType"] == kind}


def check_alarm_topic_uses_the_stacks_rotating_key_that_cloudwatch_may_use():
    """The alarm topic is encrypted with the stack's own KMS key (not alias/aws/sns, which
    CloudWatch alarms cannot publish with), rotation on, its policy granting cloudwatch.amazonaws.com."""
    topic = next(iter(stack_resources("AWS::SNS::Topic").values()))
    key_id = client("sns").get_topic_attributes(TopicArn=topic)["Attributes"].get("KmsMasterKeyId", "")
    kms = client("kms")
    key = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert key["KeyId"] == next(iter(stack_resources("AWS::KMS::Key").values())), (key_id, key["KeyId"])
    assert key["KeyManager"] == "CUSTOMER" and key["Enabled"], key
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"], "key rotation is off"
    policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    grants = [st for st in policy["Statement"] if (st.get("Principal") or {}).get("Service") == "cloudwatch.amazonaws.com"]
    assert grants and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(grants[0]["Action"]), policy


def check_dead_letter_queue_alarms_fire_on_new_letters():
    """Each DLQ's alarm is deployed as metric math over visible + not-visible letters (the
    emulator stores it through infra/local/emulator.py's shim; it does not evaluate it)."""
    names = list(stack_resources("AWS::CloudWatch::Alarm").values())
    found = {}
    for i in range(0, len(names), 100):
        for a in client("cloudwatch").describe_alarms(AlarmNames=names[i:i + 100])["MetricAlarms"]:
            if a.get("Metrics"):
                found[a["AlarmName"]] = a
    queues = set()
    for name, a in found.items():
        returned = [m for m in a["Metrics"] if m.get("ReturnData", True) and m.get("Expression")]
        assert len(returned) == 1 and returned[0]["Expression"].startswith("DIFF("), (name, a["Metrics"])
        read = {(m["MetricStat"]["Metric"]["MetricName"], m["MetricStat"]["Metric"]["Dimensions"][0]["Value"])
                for m in a["Metrics"] if "MetricStat" in m}
        queue_names = {q for _, q in read}
        assert len(queue_names) == 1, (name, read)
        for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible"):
            assert (metric, *queue_names) in read, (name, metric, read)
        assert a["TreatMissingData"] == "notBreaching" and a["AlarmActions"] and a["OKActions"], a
        queues |= queue_names
    dlq_names = {ENV[f"SAFELIGHT_{k}_DLQ_URL"].rstrip("/").rsplit("/", 1)[-1] for k in ("THUMBNAILS", "VARIANTS")}
    assert len(found) == 5 and dlq_names <= queues, (sorted(found), sorted(queues))


def check_bucket_lifecycle_never_expires_originals():
    rules = client("s3").get_bucket_lifecycle_configuration(Bucket=ENV["SAFELIGHT_BUCKET"])["Rules"]
    expiring = {}
    for r in rules:
        prefix = r.get("Prefix", (r.get("Filter") or {}).get("Prefix", ""))
        if r["Status"] == "Enabled" and ("NoncurrentVersionExpiration" in r or "Days" in (r.get("Expiration") or {})):
            expiring[r["ID"]] = prefix
    assert expiring and all(p in ("thumbnails/", "variants/") for p in expiring.values()), rules


def check_sweeper_gets_the_bucket_and_the_processing_queues():
    env = client("lambda").get_function_configuration(FunctionName=ENV["SAFELIGHT_SWEEPER_FUNCTION"])
    env = env["Environment"]["Variables"]
    want = {
        "BUCKET": ENV["SAFELIGHT_BUCKET"],
        "THUMBNAILS_QUEUE_URL": ENV["SAFELIGHT_THUMBNAILS_QUEUE_URL"],
        "VARIANTS_QUEUE_URL": ENV["SAFELIGHT_VARIANTS_QUEUE_URL"],
    }
    assert {k: env.get(k) for k in want} == want, {k: env.get(k) for k in want}


def check_ttl_is_on_for_the_expiring_tables():
    ddb = client("dynamodb")
    for key in ("SAFELIGHT_CONTROL_TABLE", "SAFELIGHT_CONNECTIONS_TABLE", "SAFELIGHT_NOTICES_TABLE"):
        desc = ddb.describe_time_to_live(TableName=ENV[key])["TimeToLiveDescription"]
        assert desc.get("TimeToLiveStatus") == "ENABLED" and desc.get("AttributeName") == "expires_at", (key, desc)


def check_images_table_has_its_indexes_and_stream():
    desc = client("dynamodb").describe_table(TableName=ENV["SAFELIGHT_IMAGES_TABLE"])["Table"]
    indexes = {i["IndexName"] for i in desc.get("GlobalSecondaryIndexes", [])}
    assert {"by_owner", "by_status"} <= indexes, indexes
    assert desc["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES", desc["StreamSpecification"]
