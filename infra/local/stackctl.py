#!/usr/bin/env python3
"""Helpers for infra/local/stack.sh that are easier with boto3 than with a shell.

Subcommands (all talk to the local emulator at $AWS_ENDPOINT_URL, never to AWS):
  bootstrap BINARY OUT          copy BINARY (debug info stripped) to OUT, mode 0755, for sam deploy to zip
  stub NAME OUT                 a `bootstrap` that only fails, for a function whose crate is missing
  ensure-bucket NAME            create the deployment artifacts bucket if absent
  fixups [--watch]              local fix-ups after `sam deploy` (see LOCAL FIX-UPS below)
  write-env                     write .local/stack.env and .local/watch.env from the stack outputs
  wait-health URL SECONDS       poll a health URL until it answers 200
  event-source FN on|off        enable or disable FN's event source mappings (e.g. `notify off`:
                                live notices stop; the browser tests must then fail)
  set-env FUNCTION NAME [VALUE] set (or with no VALUE remove) one environment variable of a
                                deployed function; the emulator recycles its warm processes, as
                                Lambda does. The suites use it to inject and lift faults. Prints the
                                old value. FUNCTION: a deployed name or a crate name (`thumbnail`).
  invoke FUNCTION [JSON|FILE]   invoke a function synchronously with a payload or a sample event
                                file, print its answer
  get-env FUNCTION              print a deployed function's environment as JSON (make proof
                                snapshots it and puts every knob back after each scenario)
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = Path(os.environ.get("SAFELIGHT_LOCAL_DIR", ROOT / ".local"))
STACK = os.environ.get("STACK_NAME", "safelight")
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
REGION = os.environ.get("AWS_REGION", "us-east-1")
ISSUER_URL = os.environ.get("ISSUER_URL", "http://127.0.0.1:4590")
WATCH_ADDR = os.environ.get("WATCH_ADDR", "127.0.0.1:9000")
# Logical id in infra/template.yaml -> cargo binary name (= crate under functions/).
FUNCTIONS = {
    "UploadFunction": "upload",
    "ImagesFunction": "images",
    "ThumbnailFunction": "thumbnail",
    "VariantFunction": "variant",
    "WsFunction": "ws",
    "NotifyFunction": "notify",
    "AdminFunction": "admin",
    "SweeperFunction": "sweeper",
    "BackfillFunction": "backfill",
}
PROXY_VAR = "MINISTACK_LAMBDA_PROXY_URL"


def client(service: str):
    import boto3

    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def write_bootstrap(out: Path, payload: bytes) -> None:
    """Writes `out` (mode 0755) unless it already holds `payload`: an unchanged binary keeps its
    file untouched, so `sam deploy` sees the same directory and skips the upload."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and out.read_bytes() == payload:
        out.chmod(0o755)
        return
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(payload)
    tmp.chmod(0o755)
    tmp.replace(out)


def cmd_bootstrap(binary: str, out: str) -> None:
    # Debug info would push a `dev` build past Lambda's 250 MB unzipped limit (which the emulator
    # enforces too); symbols stay, so backtraces keep function names.
    import shutil
    import subprocess
    import tempfile

    strip = shutil.which("strip")
    if strip:
        with tempfile.TemporaryDirectory() as tmp:
            stripped = Path(tmp) / "bootstrap"
            subprocess.run([strip, "--strip-debug", "-o", str(stripped), binary], check=True)
            write_bootstrap(Path(out), stripped.read_bytes())
    else:
        write_bootstrap(Path(out), Path(binary).read_bytes())


def cmd_stub(name: str, out: str) -> None:
    script = (
        "#!/bin/sh\n"
        f"echo 'safelight local stack: function {name} is not built (no crate functions/{name} in the workspace yet)' >&2\n"
        "exit 1\n"
    )
    write_bootstrap(Path(out), script.encode())


def cmd_ensure_bucket(name: str) -> None:
    s3 = client("s3")
    try:
        s3.head_bucket(Bucket=name)
    except Exception:
        s3.create_bucket(Bucket=name)


def stack_outputs() -> dict[str, str]:
    cfn = client("cloudformation")
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def physical_ids() -> dict[str, str]:
    cfn = client("cloudformation")
    res = cfn.describe_stack_resources(StackName=STACK)["StackResources"]
    return {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in res}


def cmd_fixups(watch: bool) -> None:
    """LOCAL FIX-UPS: each one names the emulator difference it papers over."""
    out = stack_outputs()
    ddb = client("dynamodb")
    # 1. Emulator difference: CloudFormation's TimeToLiveSpecification is ignored by MiniStack, so
    #    turn TTL on through the API. (It still never deletes expired rows: readers filter them.)
    for key in ("ControlTableName", "ConnectionsTableName", "NoticesTableName"):
        table = out[key]
        desc = ddb.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
        if desc.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
            )
    # 2. Emulator difference: MiniStack's CloudFormation stores an AWS::ApiGatewayV2::Api's
    #    CorsConfiguration with CloudFormation's key casing, which its gateway does not read (every
    #    preflight then gets 403 "CORS origin denied"). Re-apply the template's own configuration
    #    through UpdateApi, parameters resolved with the values this stack was deployed with.
    apigw = client("apigatewayv2")
    ids = physical_ids()
    for logical, cors in template_cors().items():
        if ids.get(logical):
            apigw.update_api(ApiId=ids[logical], CorsConfiguration=cors)
    # 3. Emulator difference: the emulator serves plain http only, so aws:SecureTransport is
    #    false on every request, and the template's TLS-only bucket policy (Deny s3:* unless
    #    aws:SecureTransport) would refuse the functions and every presigned URL. Locally, drop
    #    exactly the statements conditioned on aws:SecureTransport; all others stay in force.
    drop_tls_only_statements(client("s3"), out["BucketName"])
    # 4. Emulator difference: MiniStack's CloudFormation stores an SQS event source's
    #    ScalingConfig.MaximumConcurrency from a parameter as a string, and its poller then fails
    #    comparing it with a number (no message is ever delivered). Re-apply the same value as a
    #    number through UpdateEventSourceMapping.
    lam = client("lambda")
    for mapping in lam.list_event_source_mappings().get("EventSourceMappings", []):
        limit = (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")
        if limit is not None:
            lam.update_event_source_mapping(UUID=mapping["UUID"], ScalingConfig={"MaximumConcurrency": int(limit)})
    # 5. Emulator difference: MiniStack's CloudFormation drops an AWS::SNS::Topic's
    #    KmsMasterKeyId (its SNS encrypts nothing anyway). Set the attribute the template names
    #    (the alarm topic's own KMS key, which the emulator's CloudFormation does create) through
    #    SetTopicAttributes, so the topic describes as on AWS and the smoke checks can read it.
    sns = client("sns")
    for logical, key in template_topic_keys(ids).items():
        if ids.get(logical) and key:
            attrs = sns.get_topic_attributes(TopicArn=ids[logical])["Attributes"]
            if attrs.get("KmsMasterKeyId") != key:
                sns.set_topic_attributes(TopicArn=ids[logical], AttributeName="KmsMasterKeyId", AttributeValue=key)
    # 6. Emulator difference: MiniStack's CloudFormation drops an AWS::S3::Bucket's
    #    LifecycleConfiguration (and the emulator never runs lifecycle rules). Put the template's
    #    rules through PutBucketLifecycleConfiguration, so the bucket holds the configuration it
    #    has on AWS (S3 validates its shape) and the smoke checks can read it.
    s3 = client("s3")
    for logical, rules in template_lifecycle_rules().items():
        if ids.get(logical):
            s3.put_bucket_lifecycle_configuration(Bucket=ids[logical], LifecycleConfiguration={"Rules": rules})
    # 7. Hot reload (make watch): route each function's invocations to `cargo lambda watch`
    #    through MiniStack's per-function MINISTACK_LAMBDA_PROXY_URL (an emulator-only variable,
    #    never in the template). Without --watch the variable is removed again, because `sam deploy`
    #    with an unchanged template does not rewrite the function configuration.
    lam = client("lambda")
    for logical, binary in FUNCTIONS.items():
        name = ids.get(logical)
        if not name:
            continue
        cfg = lam.get_function_configuration(FunctionName=name)
        env = dict((cfg.get("Environment") or {}).get("Variables") or {})
        want = dict(env)
        if watch:
            want[PROXY_VAR] = f"http://{WATCH_ADDR}/2015-03-31/functions/{binary}/invocations"
        else:
            want.pop(PROXY_VAR, None)
        if want != env:
            lam.update_function_configuration(FunctionName=name, Environment={"Variables": want})


def drop_tls_only_statements(s3, bucket: str) -> None:
    import json

    try:
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except s3.exceptions.ClientError as err:
        if err.response.get("Error", {}).get("Code") == "NoSuchBucketPolicy":
            return
        raise
    statements = policy.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    keep = [
        st for st in statements
        if not any("aws:securetransport" in {k.lower() for k in (cond or {})}
                   for cond in (st.get("Condition") or {}).values())
    ]
    if len(keep) == len(statements):
        return
    if keep:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({**policy, "Statement": keep}))
    else:
        s3.delete_bucket_policy(Bucket=bucket)


def template_cors() -> dict[str, dict]:
    """CorsConfiguration of each AWS::ApiGatewayV2::Api in the template, Refs to parameters resolved."""
    from cfnlint.decode import cfn_yaml

    template = cfn_yaml.load(str(ROOT / "infra" / "template.yaml"))
    cfn = client("cloudformation")
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    params = {p["ParameterKey"]: p.get("ResolvedValue", p["ParameterValue"]) for p in stack.get("Parameters", [])}
    types = {k: v.get("Type") for k, v in template.get("Parameters", {}).items()}
    for key, spec in template.get("Parameters", {}).items():
        params.setdefault(key, str(spec.get("Default", "")))

    def resolve(node):
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in params:
                value = params[node["Ref"]]
                return value.split(",") if "List" in str(types.get(node["Ref"])) else value
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return {
        logical: resolve(res["Properties"]["CorsConfiguration"])
        for logical, res in template.get("Resources", {}).items()
        if res.get("Type") == "AWS::ApiGatewayV2::Api" and "CorsConfiguration" in res.get("Properties", {})
    }


def load_template() -> dict:
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(ROOT / "infra" / "template.yaml"))


def template_topic_keys(ids: dict[str, str]) -> dict[str, str]:
    """SNS topic logical id -> the KmsMasterKeyId the template gives it, resolved in this stack
    (`!GetAtt Key.Arn` -> the key's ARN, `!Ref X` -> X's physical id, a string as is)."""
    out = {}
    for logical, res in load_template().get("Resources", {}).items():
        node = (res.get("Properties") or {}).get("KmsMasterKeyId") if res.get("Type") == "AWS::SNS::Topic" else None
        if node is None:
            continue
        if isinstance(node, dict) and "Fn::GetAtt" in node:
            target, attr = node["Fn::GetAtt"] if isinstance(node["Fn::GetAtt"], list) else node["Fn::GetAtt"].split(".", 1)
            if attr != "Arn":
                sys.exit(f"fixups: {logical}: KmsMasterKeyId !GetAtt {target}.{attr} is not handled")
            out[logical] = client("kms").describe_key(KeyId=ids[target])["KeyMetadata"]["Arn"]
        elif isinstance(node, dict) and "Ref" in node:
            out[logical] = ids[node["Ref"]]
        else:
            out[logical] = str(node)
    return out


def template_lifecycle_rules() -> dict[str, list[dict]]:
    """Bucket logical id -> its template lifecycle rules in the S3 API's shape. A property this
    translation does not know stops the fix-up (extend it rather than deploy a partial copy)."""
    known = {"Id", "Status", "Prefix", "NoncurrentVersionExpiration", "NoncurrentVersionExpirationInDays",
             "ExpiredObjectDeleteMarker", "ExpirationInDays", "AbortIncompleteMultipartUpload"}
    out = {}
    for logical, res in load_template().get("Resources", {}).items():
        if res.get("Type") != "AWS::S3::Bucket":
            continue
        rules = ((res.get("Properties") or {}).get("LifecycleConfiguration") or {}).get("Rules")
        if not rules:
            continue
        api = []
        for rule in rules:
            unknown = set(rule) - known
            if unknown:
                sys.exit(f"fixups: {logical}: lifecycle rule {rule.get('Id')}: {sorted(unknown)} not translated")
            r = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
            expiration = {}
            if "ExpirationInDays" in rule:
                expiration["Days"] = int(rule["ExpirationInDays"])
            if rule.get("ExpiredObjectDeleteMarker") is not None:
                expiration["ExpiredObjectDeleteMarker"] = bool(rule["ExpiredObjectDeleteMarker"])
            if expiration:
                r["Expiration"] = expiration
            noncurrent = rule.get("NoncurrentVersionExpiration") or (
                {"NoncurrentDays": rule["NoncurrentVersionExpirationInDays"]} if "NoncurrentVersionExpirationInDays" in rule else None
            )
            if noncurrent:
                r["NoncurrentVersionExpiration"] = {k: int(v) for k, v in noncurrent.items()}
            if "AbortIncompleteMultipartUpload" in rule:
                r["AbortIncompleteMultipartUpload"] = {
                    "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
                }
            api.append(r)
        out[logical] = api
    return out


def shell_quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-_./:@%+=," for c in value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def cmd_write_env() -> None:
    out = stack_outputs()
    http_api, ws_api, ws_stage = out["HttpApiId"], out["WebSocketApiId"], out["WebSocketStageName"]
    ws_base = ENDPOINT.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    env = {
        "AWS_ENDPOINT_URL": ENDPOINT,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "SAFELIGHT_STACK_NAME": STACK,
        # Emulator difference: APIs are served path-style under the emulator's port instead of on
        # {apiId}.execute-api.{region}.amazonaws.com (the HTTP API uses the $default stage).
        "SAFELIGHT_API_URL": f"{ENDPOINT}/_aws/execute-api/{http_api}",
        "SAFELIGHT_WS_URL": f"{ws_base}/_aws/execute-api/{ws_api}/{ws_stage}",
        "SAFELIGHT_WS_MANAGEMENT_URL": out["WebSocketManagementEndpoint"],
        "SAFELIGHT_ISSUER_URL": ISSUER_URL,
        "SAFELIGHT_TOKEN_URL": f"{ISSUER_URL}/dev/token",
        "SAFELIGHT_JWT_AUDIENCE": os.environ.get("JWT_AUDIENCE", "safelight"),
        "SAFELIGHT_ADMIN_SCOPE": os.environ.get("ADMIN_SCOPE", "safelight/admin"),
        "SAFELIGHT_BUCKET": out["BucketName"],
        "SAFELIGHT_IMAGES_TABLE": out["ImagesTableName"],
        "SAFELIGHT_CONTROL_TABLE": out["ControlTableName"],
        "SAFELIGHT_CONNECTIONS_TABLE": out["ConnectionsTableName"],
        "SAFELIGHT_NOTICES_TABLE": out["NoticesTableName"],
        "SAFELIGHT_THUMBNAILS_QUEUE_URL": out["ThumbnailsQueueUrl"],
        "SAFELIGHT_THUMBNAILS_DLQ_URL": out["ThumbnailsDlqUrl"],
        "SAFELIGHT_VARIANTS_QUEUE_URL": out["VariantsQueueUrl"],
        "SAFELIGHT_VARIANTS_DLQ_URL": out["VariantsDlqUrl"],
    }
    for logical, binary in FUNCTIONS.items():
        key = logical.replace("Function", "FunctionName")
        if key in out:
            env[f"SAFELIGHT_{binary.upper()}_FUNCTION"] = out[key]
    LOCAL.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by infra/local (make dev); shell-sourceable. Local emulator values only."]
    lines += [f"{k}={shell_quote(v)}" for k, v in env.items()]
    (LOCAL / "stack.env").write_text("\n".join(lines) + "\n")

    # The environment `cargo lambda watch --env-file` gives every function in proxy mode (MiniStack
    # does not forward the template's variables to a proxied function): the union of all functions'
    # variables (names do not clash: each function reads only its own) plus the emulator endpoint.
    lam = client("lambda")
    ids = physical_ids()
    watch_env: dict[str, str] = {}
    for logical in FUNCTIONS:
        name = ids.get(logical)
        if not name:
            continue
        cfg = lam.get_function_configuration(FunctionName=name)
        watch_env.update((cfg.get("Environment") or {}).get("Variables") or {})
    watch_env.pop(PROXY_VAR, None)
    watch_env.update({
        "AWS_ENDPOINT_URL": ENDPOINT,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    })
    (LOCAL / "watch.env").write_text("".join(f"{k}={v}\n" for k, v in sorted(watch_env.items())))


def cmd_wait_health(url: str, seconds: str) -> None:
    deadline = time.monotonic() + float(seconds)
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {url}")
        time.sleep(0.1)


def function_name(binary: str) -> str:
    """The deployed name of the function built from crate `binary`."""
    logical = {b: l for l, b in FUNCTIONS.items()}.get(binary)
    if not logical:
        sys.exit(f"unknown function {binary!r}; one of {sorted(FUNCTIONS.values())}")
    name = physical_ids().get(logical)
    if not name:
        sys.exit(f"function {binary!r} is not deployed in stack {STACK}")
    return name


def cmd_event_source(binary: str, state: str) -> None:
    if state not in ("on", "off"):
        sys.exit("event-source FN on|off")
    lam = client("lambda")
    name = resolve_function(binary)
    mappings = lam.list_event_source_mappings(FunctionName=name).get("EventSourceMappings", [])
    if not mappings:
        sys.exit(f"function {binary!r} has no event source mapping")
    for m in mappings:
        lam.update_event_source_mapping(UUID=m["UUID"], Enabled=state == "on")


def resolve_function(function: str) -> str:
    """A crate name (`thumbnail`, `backfill`, …) as its deployed name; anything else as given."""
    if function in FUNCTIONS.values():
        return function_name(function)
    return function


def cmd_set_env(function: str, name: str, value: str | None = None) -> None:
    """Sets (no value: removes) one variable; prints the previous value (empty if unset), so a
    test can put it back."""
    lam = client("lambda")
    function = resolve_function(function)
    cfg = lam.get_function_configuration(FunctionName=function)
    env = dict((cfg.get("Environment") or {}).get("Variables") or {})
    print(env.get(name, ""))
    want = dict(env)
    if value is None or value == "":
        want.pop(name, None)
    else:
        want[name] = value
    if want != env:
        lam.update_function_configuration(FunctionName=function, Environment={"Variables": want})


def cmd_get_env(function: str) -> None:
    import json

    lam = client("lambda")
    cfg = lam.get_function_configuration(FunctionName=resolve_function(function))
    print(json.dumps((cfg.get("Environment") or {}).get("Variables") or {}))


def cmd_invoke(function: str, payload: str = "{}") -> None:
    """Invokes synchronously with a JSON payload (or the sample event file it names); prints the
    answer."""
    lam = client("lambda")
    if Path(payload).is_file():
        payload = Path(payload).read_text()
    out = lam.invoke(FunctionName=resolve_function(function), Payload=payload.encode())
    body = out["Payload"].read().decode()
    if out.get("FunctionError"):
        sys.exit(f"{function} failed: {body}")
    print(body)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "bootstrap":
        cmd_bootstrap(*args)
    elif cmd == "stub":
        cmd_stub(*args)
    elif cmd == "ensure-bucket":
        cmd_ensure_bucket(*args)
    elif cmd == "fixups":
        cmd_fixups(watch="--watch" in args)
    elif cmd == "write-env":
        cmd_write_env()
    elif cmd == "wait-health":
        cmd_wait_health(*args)
    elif cmd == "event-source":
        cmd_event_source(*args)
    elif cmd == "set-env":
        cmd_set_env(*args)
    elif cmd == "invoke":
        cmd_invoke(*args)
    elif cmd == "get-env":
        cmd_get_env(*args)
    else:
        sys.exit(f"unknown subcommand {cmd}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
