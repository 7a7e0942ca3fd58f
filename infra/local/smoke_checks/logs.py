"""Smoke checks of what the functions log: each to its own log group with the template's retention,
EMF metrics and JSON log lines with the request and image ids after a pipeline run."""

from __future__ import annotations

import json
import time

from smoke_checks import ENV, client, http, token
from stackenv import ROOT, load_template


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
    # The local stack passes no LogRetentionDays: the template's default applies.
    want = int(load_template()["Parameters"]["LogRetentionDays"]["Default"])
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


def logged_metrics(function: str, since_ms: int, wanted: set[str], until: float) -> dict[str, list[dict]]:
    """The EMF metrics the function logged since `since_ms`, read again (log delivery is
    asynchronous) until every `wanted` name is there or the monotonic clock passes `until`."""
    while True:
        metrics = emf_metrics(json_lines(function_log_lines(function, since_ms)))
        if wanted <= set(metrics) or time.monotonic() >= until:
            return metrics
        time.sleep(0.3)


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
        function = ENV[f"SAFELIGHT_{stage.upper()}_FUNCTION"]
        wanted = {"RenderMs", "BytesIn", "BytesOut"}
        metrics = logged_metrics(function, since, wanted, deadline + 10)
        for name in sorted(wanted):
            docs = [d for d in metrics.get(name, []) if d.get("Stage") == stage]
            assert docs, f"{stage}: no EMF document with {name} (Stage={stage}); got {sorted(metrics)}"
            assert docs[0]["_namespace"] == namespace, f"{name}: namespace {docs[0]['_namespace']}, want {namespace}"
            assert docs[0]["_dimensions"] == [["Stage"]], f"{name}: dimensions {docs[0]['_dimensions']}"
            assert docs[0].get("requestId"), f"{name}: the EMF document has no requestId property"
        lines = [d for d in json_lines(function_log_lines(function, since)) if "_aws" not in d and image_id in json.dumps(d)]
        assert lines, f"{stage}: no JSON log line mentions {image_id}"
        for line in lines:
            spans = {k: v for s in line.get("spans", []) for k, v in s.items()}
            assert spans.get("requestId"), f"{stage}: a log line without the request id: {line}"
            assert spans.get("image_id") == image_id, f"{stage}: a log line without image_id={image_id}: {line}"
    metrics = logged_metrics(ENV["SAFELIGHT_NOTIFY_FUNCTION"], since, {"UploadToCompleteMs"}, deadline + 20)
    assert metrics.get("UploadToCompleteMs"), f"notify: no UploadToCompleteMs EMF document; got {sorted(metrics)}"
