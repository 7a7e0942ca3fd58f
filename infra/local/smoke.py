#!/usr/bin/env python3
"""Smoke checks of the deployed local stack's wiring (infra, not function logic).

Run by `make test` before the Rust integration suites, and useful alone after `make dev`:
    .venv/bin/python infra/local/smoke.py
Each check reads `.local/stack.env`; the closing line is `smoke: N passed, N failed`.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = Path(os.environ.get("SAFELIGHT_LOCAL_DIR", ROOT / ".local")) / "stack.env"


def load_env() -> dict[str, str]:
    env = {}
    for line in ENV_FILE.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v.strip("'")
    return env


ENV = load_env()


def client(service: str):
    import boto3

    return boto3.client(
        service,
        endpoint_url=ENV["AWS_ENDPOINT_URL"],
        region_name=ENV["AWS_REGION"],
        aws_access_key_id=ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=ENV["AWS_SECRET_ACCESS_KEY"],
    )


def http(method: str, url: str, token: str | None = None, body: bytes | None = None,
         content_type: str = "application/json") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def token(query: str) -> str:
    with urllib.request.urlopen(f"{ENV['SAFELIGHT_TOKEN_URL']}?{query}", timeout=10) as resp:
        return resp.read().decode().strip()


def claims_of(tok: str) -> dict:
    payload = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# ------------------------------------------------------------------ checks
def check_request_without_token_is_refused_by_the_authorizer():
    status, _ = http("GET", f"{ENV['SAFELIGHT_API_URL']}/api/images")
    assert status == 401, f"expected 401, got {status}"


def check_forged_expired_and_wrong_audience_tokens_are_refused():
    for query in ("user=demo&forge=1", "user=demo&ttl=-120", "user=demo&aud=someone-else"):
        status, _ = http("GET", f"{ENV['SAFELIGHT_API_URL']}/api/images", token(query))
        assert status == 401, f"{query}: expected 401, got {status}"


def check_a_valid_token_reaches_the_upload_function():
    body = json.dumps({"filename": "smoke.jpg", "content_type": "image/jpeg", "size": 1234}).encode()
    status, resp = http("POST", f"{ENV['SAFELIGHT_API_URL']}/api/images/upload", token("user=demo"), body)
    # Past the authorizer: the function answered (any status but the gateway's 401/403/404).
    assert status not in (401, 403, 404), f"gateway refused a valid token: {status} {resp[:200]!r}"
    # The function's invocation shows up in the emulator's Lambda logs is not portable; the answer is.
    if status >= 500:
        raise AssertionError(f"upload function failed: {status} {resp[:300]!r}")


def check_browser_preflight_to_the_api_is_allowed():
    req = urllib.request.Request(f"{ENV['SAFELIGHT_API_URL']}/api/images/upload", method="OPTIONS")
    req.add_header("Origin", ENV["SAFELIGHT_ISSUER_URL"])
    req.add_header("Access-Control-Request-Method", "POST")
    req.add_header("Access-Control-Request-Headers", "authorization,content-type")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 204), resp.status
        allowed = resp.headers.get("Access-Control-Allow-Headers", "").lower()
        assert "authorization" in allowed and resp.headers.get("Access-Control-Allow-Origin"), dict(resp.headers)


def check_bucket_cors_rules_allow_browser_uploads():
    rules = client("s3").get_bucket_cors(Bucket=ENV["SAFELIGHT_BUCKET"])["CORSRules"]
    methods = {m for r in rules for m in r["AllowedMethods"]}
    headers = {h.lower() for r in rules for h in r.get("AllowedHeaders", [])}
    assert {"PUT", "POST"} <= methods, rules
    assert {"content-type", "x-amz-checksum-sha256"} <= headers, rules


def check_tokens_carry_sub_audience_and_the_admin_scope_only_for_admins():
    scope = ENV["SAFELIGHT_ADMIN_SCOPE"]
    admin = claims_of(token("user=admin"))
    demo = claims_of(token("user=demo"))
    assert scope in admin["scope"].split(" ") and admin["sub"] == "admin", admin
    assert "groups" not in admin, admin
    assert scope not in demo["scope"].split(" ") and demo["aud"] == ENV["SAFELIGHT_JWT_AUDIENCE"], demo
    fresh = claims_of(token(f"sub=smoke-{uuid.uuid4().hex[:8]}&admin=1"))
    assert scope in fresh["scope"].split(" "), fresh


def check_the_gateway_refuses_admin_routes_to_tokens_without_the_admin_scope():
    """AuthorizationScopes on the admin routes: API Gateway (here the emulator, which enforces them
    like AWS) answers 403 before the function runs, whatever groups or look-alike scopes the token
    carries; the admin scope passes."""
    url = f"{ENV['SAFELIGHT_API_URL']}/api/admin/processing-queue"
    scope = ENV["SAFELIGHT_ADMIN_SCOPE"]
    for query in ("user=demo", "user=demo&groups=admin", "user=demo&groups=Site%20admin",
                  f"user=demo&scope=x,{scope}", f"user=demo&scope={scope}s"):
        status, body = http("GET", url, token(query))
        assert status == 403, f"{query}: expected 403, got {status} {body[:200]!r}"
    status, body = http("GET", url, token("user=admin"))
    assert status == 200, f"admin: expected 200, got {status} {body[:200]!r}"


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


def check_websocket_api_is_deployed_with_its_routes():
    api_id = ENV["SAFELIGHT_WS_URL"].rstrip("/").split("/")[-2]
    apigw = client("apigatewayv2")
    routes = {r["RouteKey"] for r in apigw.get_routes(ApiId=api_id)["Items"]}
    assert {"$connect", "$disconnect", "$default"} <= routes, routes
    api = apigw.get_api(ApiId=api_id)
    assert api["ProtocolType"] == "WEBSOCKET" and api["RouteSelectionExpression"] == "$request.body.action", api


def check_websocket_connect_without_token_is_refused():
    url = urllib.parse.urlsplit(ENV["SAFELIGHT_WS_URL"])
    with socket.create_connection((url.hostname, url.port or 80), timeout=15) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((
            f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
    assert " 101 " not in status_line + " ", f"connected without a token: {status_line}"


def function_log_group(fn_name: str) -> str:
    """The log group the function writes to: its LoggingConfig.LogGroup (the template gives every
    function its own group with a retention), as Lambda reports it."""
    cfg = client("lambda").get_function_configuration(FunctionName=fn_name)
    group = (cfg.get("LoggingConfig") or {}).get("LogGroup")
    assert group, f"{fn_name}: no LoggingConfig.LogGroup (it would log to a group that never expires)"
    return group


def check_every_function_logs_to_its_own_log_group_with_retention():
    """Each deployed function's LoggingConfig names the stack's group for it,
    /aws/lambda/<stack>/<fn>, and that group exists with the template's retention."""
    logs = client("logs")
    stack = ENV["SAFELIGHT_STACK_NAME"]
    functions = {k[len("SAFELIGHT_"):-len("_FUNCTION")].lower(): v for k, v in ENV.items()
                 if k.startswith("SAFELIGHT_") and k.endswith("_FUNCTION")}
    assert len(functions) >= 9, f"stack.env names only {sorted(functions)}"
    from cfnlint.decode import cfn_yaml

    # The local stack passes no LogRetentionDays: the template's default applies.
    want = int(cfn_yaml.load(str(ROOT / "infra" / "template.yaml"))["Parameters"]["LogRetentionDays"]["Default"])
    for binary, fn_name in sorted(functions.items()):
        group = function_log_group(fn_name)
        assert group == f"/aws/lambda/{stack}/{binary}", f"{binary}: logs to {group}"
        found = [g for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] if g["logGroupName"] == group]
        assert found, f"{binary}: its log group {group} does not exist"
        got = int(found[0].get("retentionInDays") or 0)
        assert got == want, f"{binary}: {group} keeps logs {got or 'forever'} days, want {want} (LogRetentionDays)"


def function_log_lines(fn_name: str, since_ms: int) -> list[str]:
    logs = client("logs")
    lines, kwargs = [], {"logGroupName": function_log_group(fn_name), "startTime": since_ms}
    while True:
        page = logs.filter_log_events(**kwargs)
        lines += [e["message"] for e in page.get("events", [])]
        if not page.get("nextToken"):
            return lines
        kwargs["nextToken"] = page["nextToken"]


def json_lines(lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        for part in line.splitlines():
            part = part.strip()
            if part.startswith("{"):
                try:
                    out.append(json.loads(part))
                except ValueError:
                    pass
    return out


def emf_metrics(docs: list[dict]) -> dict[str, list[dict]]:
    """Metric name -> the EMF documents that carry it."""
    found: dict[str, list[dict]] = {}
    for doc in docs:
        for directive in (doc.get("_aws") or {}).get("CloudWatchMetrics", []):
            for metric in directive.get("Metrics", []):
                found.setdefault(metric["Name"], []).append({**doc, "_namespace": directive["Namespace"],
                                                             "_dimensions": directive["Dimensions"]})
    return found


def check_a_pipeline_run_writes_emf_metrics_and_json_logs():
    """An upload processed end to end leaves, in the functions' CloudWatch logs: EMF documents
    (render ms, bytes in/out per stage, notices sent, upload-to-complete latency) in the stack's
    namespace, and JSON log lines that carry the request id and the image id."""
    since = int(time.time() * 1000) - 1000
    photo = (ROOT / "shared" / "tests" / "fixtures" / "orientation-6.jpg").read_bytes()
    status, resp = http("POST", f"{ENV['SAFELIGHT_API_URL']}/api/images/upload", token("user=demo"), photo, "image/jpeg")
    assert status == 202, f"direct upload: {status} {resp[:300]!r}"
    image_id = json.loads(resp)["image_id"]
    deadline = time.monotonic() + 60
    while True:
        status, resp = http("GET", f"{ENV['SAFELIGHT_API_URL']}/api/images/{image_id}/processing-status", token("user=demo"))
        if status == 200 and json.loads(resp)["processing_status"] == "completed":
            break
        assert time.monotonic() < deadline, f"image {image_id} not completed in 60 s: {resp[:300]!r}"
        time.sleep(0.3)
    namespace = f"Safelight/{ENV['SAFELIGHT_STACK_NAME']}"
    for stage in ("thumbnail", "variant"):
        metrics = {}
        wanted = {"RenderMs", "BytesIn", "BytesOut"}
        while time.monotonic() < deadline + 10:  # log delivery is asynchronous
            metrics = emf_metrics(json_lines(function_log_lines(ENV[f"SAFELIGHT_{stage.upper()}_FUNCTION"], since)))
            if wanted <= set(metrics):
                break
            time.sleep(0.3)
        for name in sorted(wanted):
            docs = [d for d in metrics.get(name, []) if d.get("Stage") == stage]
            assert docs, f"{stage}: no EMF document with {name} (Stage={stage}); got {sorted(metrics)}"
            assert docs[0]["_namespace"] == namespace, f"{name}: namespace {docs[0]['_namespace']}, want {namespace}"
            assert docs[0]["_dimensions"] == [["Stage"]], f"{name}: dimensions {docs[0]['_dimensions']}"
            assert docs[0].get("requestId"), f"{name}: the EMF document has no requestId property"
        lines = [d for d in json_lines(function_log_lines(ENV[f"SAFELIGHT_{stage.upper()}_FUNCTION"], since))
                 if "_aws" not in d and image_id in json.dumps(d)]
        assert lines, f"{stage}: no JSON log line mentions {image_id}"
        for line in lines:
            spans = {k: v for s in line.get("spans", []) for k, v in s.items()}
            assert spans.get("requestId"), f"{stage}: a log line without the request id: {line}"
            assert spans.get("image_id") == image_id, f"{stage}: a log line without image_id={image_id}: {line}"
    metrics = {}
    while time.monotonic() < deadline + 20:
        metrics = emf_metrics(json_lines(function_log_lines(ENV["SAFELIGHT_NOTIFY_FUNCTION"], since)))
        if {"UploadToCompleteMs"} <= set(metrics):
            break
        time.sleep(0.3)
    assert metrics.get("UploadToCompleteMs"), f"notify: no UploadToCompleteMs EMF document; got {sorted(metrics)}"


def main() -> int:
    checks = [(n, f) for n, f in globals().items() if n.startswith("check_") and callable(f)]
    only = sys.argv[1:]
    passed = failed = 0
    for name, fn in checks:
        if only and not any(o in name for o in only):
            continue
        started = time.monotonic()
        try:
            fn()
        except Exception as err:  # report and go on
            failed += 1
            print(f"FAIL {name[6:]}: {err}")
            if os.environ.get("SMOKE_VERBOSE"):
                traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name[6:]} ({(time.monotonic() - started) * 1000:.0f} ms)")
    print(f"smoke: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
