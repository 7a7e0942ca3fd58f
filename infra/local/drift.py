#!/usr/bin/env python3
"""Drift check: the local stack must differ from an AWS deployment only by documented parameter
overrides. Run by `make test` after the local deploy; alone after `make dev`:

    .venv/bin/python infra/local/drift.py

1. The template the emulator's CloudFormation holds for the stack (as `sam deploy` sent it) is
   infra/template.yaml, resource for resource, except the CodeUri values `sam deploy` rewrites to
   the uploaded artifacts (and the SamResourceId metadata it adds).
2. Every parameter whose local value differs from the template's default (JwtIssuer and
   AllowedOrigins have none) is listed in the README's "What the local stack overrides" table;
   every listed name is a template parameter. The comparison is with the template's defaults, not
   with samconfig.toml: after a guided `make deploy` that file holds the deployer's own answers
   (issuer, origins, memory sizes), choices of that deployment rather than drift of the local
   stack.
The emulator fix-ups after a deploy (infra/local/fixups.py) change no template or
parameter; each names the emulator difference it papers over.
"""

from __future__ import annotations

import copy
import re
import sys

from stackenv import ROOT, client, load_template, read_env

README = ROOT / "README.md"
SECTION = "What the local stack overrides"
REWRITTEN_BY_SAM_DEPLOY = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}


def normalise(template: dict) -> dict:
    """The template without what `sam deploy` rewrites when it uploads artifacts."""
    t = copy.deepcopy(template)
    for res in t.get("Resources", {}).values():
        key = REWRITTEN_BY_SAM_DEPLOY.get(res.get("Type"))
        if key:
            res.get("Properties", {}).pop(key, None)
        meta = res.get("Metadata")
        if isinstance(meta, dict):
            meta.pop("SamResourceId", None)
            if not meta:
                del res["Metadata"]
    return t


def differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append(f"{path}/{k}: only in the deployed template")
            elif k not in b:
                out.append(f"{path}/{k}: only in infra/template.yaml")
            else:
                out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} in infra/template.yaml, {b!r} deployed"]


def documented_overrides() -> set[str]:
    """Parameter names in the first column of the README's local-overrides table."""
    text = README.read_text()
    start = text.find(SECTION)
    if start < 0:
        sys.exit(f"drift: README.md has no '{SECTION}' section")
    body = text[start:]
    nxt = re.search(r"\n#{1,6} ", body[len(SECTION):])
    body = body[: len(SECTION) + nxt.start()] if nxt else body
    return set(re.findall(r"^\|\s*`([A-Za-z0-9]+)`\s*\|", body, flags=re.M))


def aws_parameters(template: dict) -> dict[str, str | None]:
    """The parameters the template deploys with when nobody overrides them: its defaults."""
    return {name: None if spec.get("Default") is None else str(spec["Default"])
            for name, spec in template.get("Parameters", {}).items()}


def main() -> int:
    from cfnlint.decode import cfn_yaml

    env = read_env()
    cfn = client("cloudformation", env["AWS_ENDPOINT_URL"], env["AWS_REGION"])
    stack = env["SAFELIGHT_STACK_NAME"]
    ours = load_template()
    body = cfn.get_template(StackName=stack, TemplateStage="Original")["TemplateBody"]
    deployed = cfn_yaml.loads(body) if isinstance(body, str) else body
    problems = [f"template drift {d}" for d in differences(normalise(ours), normalise(deployed))]

    local = {
        p["ParameterKey"]: p.get("ParameterValue")
        for p in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Parameters", [])
    }
    aws = aws_parameters(ours)
    documented = documented_overrides()
    overridden = sorted(k for k in aws if local.get(k, aws[k]) != aws[k])
    for name in overridden:
        if name not in documented:
            problems.append(
                f"parameter {name}: local {local.get(name)!r}, AWS {aws[name]!r}, and not documented in "
                f"README.md '{SECTION}'"
            )
    for name in sorted(documented - set(aws)):
        problems.append(f"README.md '{SECTION}' lists {name}, which is not a template parameter")
    for name in sorted(set(local) - set(aws)):
        problems.append(f"the local stack passes {name}, which is not a template parameter")

    if problems:
        print("drift: the local stack differs from the AWS deployment beyond documented overrides:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"drift: none. Same template; local overrides (all documented): {', '.join(overridden) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
