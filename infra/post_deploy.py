#!/usr/bin/env python3
"""After each deploy (`make deploy` runs it): the migration of existing originals.

Invokes the stack's backfill function until it answers `done` (each invocation works up to 15
minutes and records a checkpoint; the next one resumes there). The function's run-once marker
(`migration#backfill-v1` in the control table) turns every invocation after the first completed
run into a quick refusal, so running this after every deploy is cheap. A failure here leaves the
deploy in place and is reported: run it again (it resumes), or see the README's operator section.

  post_deploy.py [--stack-name NAME] [--region REGION] [--dry-run] [--force]

The stack name and region default to the deployment's (STACK_NAME / AWS_REGION, else what the
guided deploy saved in samconfig.toml, else `safelight` and the default region), the same
answer `make deploy` and `make destroy` use.

Why a post-deploy invoke rather than a CloudFormation custom resource: the migration is long and
resumable, and it must not gate or roll back an unrelated infrastructure change. A custom resource
has to answer CloudFormation within an hour and its failure rolls the stack back; an invoke after
the deploy can take as many 15-minute invocations as the bucket needs and, if it fails, simply
runs again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from release import deploy_target  # noqa: E402


def main() -> int:
    stack, region = deploy_target()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack-name", default=stack)
    p.add_argument("--region", default=region)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--max-invocations", type=int, default=200)
    args = p.parse_args()

    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session(region_name=args.region)
    cfn = session.client("cloudformation")
    try:
        stacks = cfn.describe_stacks(StackName=args.stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as err:
        print(
            f"post-deploy: cannot read stack {args.stack_name} in {session.region_name or 'the default region'} "
            f"({err}); if the deploy was cancelled there is nothing to migrate, else run "
            f"`.venv/bin/python infra/post_deploy.py --stack-name <name> --region <region>`",
            file=sys.stderr,
        )
        return 1
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    name = outputs.get("BackfillFunctionName")
    if not name:
        print(f"stack {args.stack_name} has no BackfillFunctionName output", file=sys.stderr)
        return 1
    lam = session.client("lambda", config=Config(read_timeout=960, retries={"max_attempts": 0}))
    payload = {"dry_run": args.dry_run, "force": args.force}
    for i in range(args.max_invocations):
        out = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
        body = out["Payload"].read().decode()
        if out.get("FunctionError"):
            print(f"backfill invocation {i + 1} failed: {body}", file=sys.stderr)
            return 1
        report = json.loads(body)
        counts = report.get("counts", {})
        print(
            f"backfill ({report.get('start')}): {counts.get('images_found', 0)} originals, "
            f"{counts.get('rows_created', 0)} rows created, {counts.get('rows_repaired', 0)} repaired, "
            f"{counts.get('stages_enqueued', 0)} stages enqueued"
            + (f"; {report['refused']}" if report.get("refused") else "")
        )
        if report.get("done"):
            return 0
        # The next invocation resumes the run (never a forced restart).
        payload = {"dry_run": False, "force": False}
    print("backfill did not finish within --max-invocations", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
