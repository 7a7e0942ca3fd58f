"""`make deploy` and `make destroy`: samconfig.toml's saved answers, the deployment's stack and
region, `sam deploy` (guided the first time, with the delivery key's parameters) and the
confirmed deletion of the stack, its bucket's contents and its signing-key secrets.
"""

from __future__ import annotations

import os
import subprocess
import tomllib

from releasing import BUILD_DIR, ROOT, TEMPLATE, VENV_BIN, ReleaseError, env_with_tools, log
from releasing.delivery_key import (SECRET_RECOVERY_DAYS, delivers_by_cloudfront, delivery_parameters,
                                    delivery_secret_prefix)

SAMCONFIG = ROOT / "samconfig.toml"


def samconfig(command: str = "deploy") -> dict:
    """samconfig.toml's [default.<command>.parameters] ({} without the file)."""
    if not SAMCONFIG.exists():
        return {}
    with open(SAMCONFIG, "rb") as f:
        return tomllib.load(f).get("default", {}).get(command, {}).get("parameters", {})


def deploy_target() -> tuple[str, str | None]:
    """(stack name, region) of the deployment: STACK_NAME / AWS_REGION from the environment, else
    what samconfig.toml holds (a guided deploy saves the answers there), else `safelight` and the
    AWS CLI's default region. deploy, post_deploy.py and destroy all use this one answer."""
    params, glob = samconfig("deploy"), samconfig("global")
    stack = os.environ.get("STACK_NAME") or params.get("stack_name") or glob.get("stack_name") or "safelight"
    region = os.environ.get("AWS_REGION") or params.get("region") or glob.get("region")
    return stack, region


def saved_parameters() -> dict[str, str]:
    """parameter_overrides of samconfig.toml as a dict (a string `K=V K="V W"` or a list)."""
    import shlex

    overrides = samconfig().get("parameter_overrides", "")
    items = overrides if isinstance(overrides, list) else shlex.split(overrides)
    return dict(item.split("=", 1) for item in items if "=" in item)


def first_deploy() -> bool:
    """True until a guided deploy saved this account's parameters (JwtIssuer) to samconfig.toml."""
    return not saved_parameters().get("JwtIssuer")


def deployed_parameters(cfn, stack: str) -> dict[str, str]:
    """The stack's current parameter values; {} before its first deploy."""
    from botocore.exceptions import ClientError

    try:
        found = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Parameters", [])
    except ClientError as err:
        if "does not exist" in str(err):
            return {}
        raise
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in found}


def overrides_args(extra: dict[str, str]) -> list[str]:
    """`--parameter-overrides` for sam deploy: samconfig.toml's own overrides (a command-line
    value replaces the file's), then `extra`, quoted (a PEM has spaces and newlines)."""
    if not extra:
        return []
    saved = samconfig().get("parameter_overrides", "")
    args = list(saved) if isinstance(saved, list) else [saved] if saved else []
    for key, value in extra.items():
        if '"' in value or "\\" in value:
            raise ReleaseError(f"parameter {key}: a value with a quote or backslash cannot be passed to sam deploy")
        args.append(f'{key}="{value}"')
    return ["--parameter-overrides", *args]


def cmd_deploy() -> None:
    built = BUILD_DIR / "template.yaml"
    if not built.exists() or built.stat().st_mtime < TEMPLATE.stat().st_mtime:
        raise ReleaseError("the built template is missing or older than infra/template.yaml: run make package")
    arch = saved_parameters().get("Architecture", "arm64")
    if arch != "arm64":
        raise ReleaseError(
            f"samconfig.toml sets Architecture={arch}, but make package builds arm64 binaries: "
            "set Architecture=arm64 in its parameter_overrides (x86_64 is for the local emulator)"
        )
    cmd = [str(VENV_BIN / "sam"), "deploy", "--template-file", str(built), "--config-file", str(SAMCONFIG)]
    import boto3

    stack, region = deploy_target()
    guided = first_deploy() or os.environ.get("GUIDED") == "1"
    # SAM's guided run asks for the region but still needs a default one to set up (without it,
    # it fails after every question with nothing saved), and the signing key's secret goes to the
    # stack's region: resolve it first, or say how.
    region = region or boto3.session.Session().region_name
    if not region:
        raise ReleaseError(
            "no AWS region configured: `export AWS_REGION=<region>` (e.g. eu-west-1) or "
            "`aws configure set region <region>`, then make deploy again (answer the same region when asked)"
        )
    session = boto3.session.Session(region_name=region)
    saved = saved_parameters()
    keys, retired = {}, None
    if delivers_by_cloudfront(saved):
        keys, retired = delivery_parameters(
            stack,
            saved,
            deployed_parameters(session.client("cloudformation"), stack),
            session.client("secretsmanager"),
            rotate=os.environ.get("ROTATE_DELIVERY_KEY") == "1",
        )
    cmd += overrides_args(keys)
    if guided:
        log(f"sam deploy --guided (region {region}): answer the questions; they are saved to samconfig.toml")
        cmd += ["--guided", "--region", region]
    else:
        log(f"sam deploy of stack {stack} ({region}) with samconfig.toml's answers "
            "(GUIDED=1 make deploy asks again)")
    if not retired:
        os.execvpe(cmd[0], cmd, env_with_tools())
    subprocess.run(cmd, env=env_with_tools(), check=True)
    # The stack now trusts and signs with the new key only: the old secret has no reader left.
    session.client("secretsmanager").delete_secret(SecretId=retired, RecoveryWindowInDays=SECRET_RECOVERY_DAYS)
    log(f"rotated the delivery key; the old secret {retired} is deleted in {SECRET_RECOVERY_DAYS} days")


def cmd_target() -> None:
    """Prints `stack region` (what post_deploy.py and destroy use)."""
    stack, region = deploy_target()
    print(stack, region or "")


def cmd_destroy() -> None:
    import boto3

    stack, region = deploy_target()
    session = boto3.session.Session(region_name=region)
    cfn = session.client("cloudformation")
    try:
        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
        }
    except Exception as err:  # noqa: BLE001 - any failure here means there is nothing to destroy
        raise ReleaseError(f"stack {stack} not found in {session.region_name}: {err}") from err
    bucket = outputs.get("BucketName")
    # The signing key's secret, also when a guided first deploy named the stack differently from
    # the secret's prefix.
    key_secret = deployed_parameters(cfn, stack).get("DeliveryPrivateKeySecretArn")
    print(f"This deletes stack '{stack}' in {session.region_name}, every image in bucket {bucket} "
          "and the tables' data. There is no undo.")
    if os.environ.get("CONFIRM") != stack:
        answer = input(f"Type the stack name ({stack}) to confirm: ").strip()
        if answer != stack:
            raise ReleaseError("not confirmed; nothing deleted")
    if bucket:
        log(f"emptying s3://{bucket} (all versions)")
        session.resource("s3").Bucket(bucket).object_versions.delete()
    log(f"sam delete --stack-name {stack}")
    subprocess.run(
        [str(VENV_BIN / "sam"), "delete", "--stack-name", stack, "--region", session.region_name, "--no-prompts"],
        env=env_with_tools(),
        check=True,
    )
    secrets = session.client("secretsmanager")
    prefix = delivery_secret_prefix(stack)
    arns = {s["ARN"] for s in secrets.list_secrets(Filters=[{"Key": "name", "Values": [prefix]}])["SecretList"]}
    for arn in sorted(arns | ({key_secret} if key_secret else set())):
        log(f"scheduling the deletion of secret {arn} ({SECRET_RECOVERY_DAYS}-day recovery window)")
        secrets.delete_secret(SecretId=arn, RecoveryWindowInDays=SECRET_RECOVERY_DAYS)
