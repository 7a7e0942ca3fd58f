"""The local stack as the tools in infra/local see it: where its state lives, the variables
`stackctl.py write-env` writes to `.local/stack.env`, boto3 clients for the emulator, the
template's functions and the deployed stack's outputs and resources.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = Path(os.environ.get("SAFELIGHT_LOCAL_DIR", ROOT / ".local"))
TEMPLATE = ROOT / "infra" / "template.yaml"
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
# MiniStack's per-function variable routing invocations to `cargo lambda watch` (never in the template).
PROXY_VAR = "MINISTACK_LAMBDA_PROXY_URL"


def read_env(*names: str) -> dict[str, str]:
    """The variables of `.local/stack.env` (or the files named), as write-env wrote them."""
    env = {}
    for name in names or ("stack.env",):
        for line in (LOCAL / name).read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v.strip("'")
    return env


def client(service: str, endpoint: str, region: str):
    """A boto3 client for the emulator at `endpoint` (its test credentials, never a profile)."""
    import boto3

    return boto3.client(
        service, endpoint_url=endpoint, region_name=region, aws_access_key_id="test", aws_secret_access_key="test"
    )


def load_template() -> dict:
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(TEMPLATE))


def describe_stack(cfn, stack: str) -> dict:
    return cfn.describe_stacks(StackName=stack)["Stacks"][0]


def stack_outputs(cfn, stack: str) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in describe_stack(cfn, stack).get("Outputs", [])}


def physical_ids(cfn, stack: str, kind: str | None = None) -> dict[str, str]:
    """Logical id -> physical id of the stack's resources (of one type, if `kind` is given)."""
    res = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    return {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in res if kind in (None, r["ResourceType"])}


def function_env(lam, name: str) -> dict[str, str]:
    """A deployed function's environment variables."""
    cfg = lam.get_function_configuration(FunctionName=name)
    return dict((cfg.get("Environment") or {}).get("Variables") or {})


def update_function_env(lam, name: str, env: dict[str, str], want: dict[str, str]) -> None:
    """Replaces the function's environment `env` by `want` unless they are the same (an update
    recycles the function's warm processes)."""
    if want != env:
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": want})
