"""The local fix-ups after `sam deploy` to the emulator (`stackctl.py fixups`): each one names the
emulator difference it papers over, and none changes the template or a parameter
(infra/local/drift.py checks that). Also used by rehearse_deploy.py for its own stack.
"""

from __future__ import annotations

import json
import sys

from stackenv import (FUNCTIONS, PROXY_VAR, describe_stack, function_env, load_template, physical_ids, stack_outputs,
                      update_function_env)


def apply(client, stack: str, watch_addr: str | None) -> None:
    """Every fix-up, on stack `stack`; `client(service)` gives a boto3 client for the emulator.
    With `watch_addr` the functions' invocations go to `cargo lambda watch` there."""
    cfn = client("cloudformation")
    out, ids = stack_outputs(cfn, stack), physical_ids(cfn, stack)
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
    for logical, cors in template_cors(cfn, stack).items():
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
    for logical, key in template_topic_keys(client("kms"), ids).items():
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
    for logical, binary in FUNCTIONS.items():
        name = ids.get(logical)
        if not name:
            continue
        env = function_env(lam, name)
        want = dict(env)
        if watch_addr:
            want[PROXY_VAR] = f"http://{watch_addr}/2015-03-31/functions/{binary}/invocations"
        else:
            want.pop(PROXY_VAR, None)
        update_function_env(lam, name, env, want)


def drop_tls_only_statements(s3, bucket: str) -> None:
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


def template_cors(cfn, stack: str) -> dict[str, dict]:
    """CorsConfiguration of each AWS::ApiGatewayV2::Api in the template, Refs to parameters resolved."""
    template = load_template()
    params = {
        p["ParameterKey"]: p.get("ResolvedValue", p["ParameterValue"]) for p in describe_stack(cfn, stack).get("Parameters", [])
    }
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


def template_topic_keys(kms, ids: dict[str, str]) -> dict[str, str]:
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
            out[logical] = kms.describe_key(KeyId=ids[target])["KeyMetadata"]["Arn"]
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
