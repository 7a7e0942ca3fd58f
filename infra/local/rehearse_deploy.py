#!/usr/bin/env python3
"""A rehearsal of `make deploy` / `make destroy` against the local emulator (no AWS account).

    make dev && make deploy-rehearsal      (~2 min; not in make test)

What it runs is the real deploy tooling, from a scratch copy of the repository's deploy files (so
your samconfig.toml is never touched), with the AWS SDKs pointed at `make dev`'s emulator:
  0. with no AWS region configured, `infra/release.py deploy` must stop before asking anything and
     say how to set one (SAM's guided run would fail after every question, saving nothing);
  1. `infra/release.py deploy` with no saved answers: `sam deploy --guided`, answered on stdin the
     way the README tells a first-time deployer to (stack name, region, JwtIssuer,
     AllowedOrigins, AlarmEmail, Enter for every other default, Y to the change set); the
     answers must land in samconfig.toml;
  2. `infra/post_deploy.py` with no arguments: it must find the stack and region the guided run
     saved and run the backfill to done; a second run must be the run-once refusal;
  3. `infra/release.py deploy` again: non-guided, nothing changed, exit status 0;
  4. `infra/release.py destroy`: a wrong confirmation deletes nothing; CONFIRM=<stack> empties the
     bucket (an object is put there first) and deletes the stack, its log groups included.
The built template is infra/template.yaml with each CodeUri pointed at the native binaries
`make dev` built (.local/functions/<fn>/), since the emulator runs functions as local processes;
`make package`'s arm64 build is what AWS gets. One emulator difference is bridged, as in
infra/local/fixups.py: the emulator serves plain http, so the bucket's TLS-only statement
(Deny unless aws:SecureTransport) is removed from the rehearsal stack before the backfill runs.
Exit status 1 with the failed step named.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fixups import drop_tls_only_statements
from stackenv import LOCAL, ROOT, TEMPLATE, client, load_template, read_env, stack_outputs

STACK = "rehearsal"
REGION = "us-east-1"
# Delivery=s3: the emulator cannot deploy the CloudFront distribution (see infra/local/stack.sh).
ANSWERS = {"AllowedOrigins": "https://app.example.com", "AlarmEmail": "ops@example.com", "Delivery": "s3"}


class Failed(Exception):
    pass


def log(msg: str) -> None:
    print(f"\033[1m[rehearse]\033[0m {msg}", file=sys.stderr, flush=True)


def scratch_repo(tmp: Path) -> None:
    """The files `make deploy` / `make destroy` use, with a built template of native binaries."""
    (tmp / "infra").mkdir()
    for name in ("release.py", "post_deploy.py", "template.yaml"):
        shutil.copy2(ROOT / "infra" / name, tmp / "infra" / name)
    shutil.copytree(ROOT / "infra" / "releasing", tmp / "infra" / "releasing", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "samconfig.toml", tmp / "samconfig.toml")
    # Delivery=s3 before the first deploy, as a deployer without CloudFront would set it: the
    # deploy tooling then makes no CloudFront signing key (and the guided question defaults to it).
    config = (tmp / "samconfig.toml").read_text()
    config, n = re.subn(r'(?m)^parameter_overrides = "(.*)"$', r'parameter_overrides = "\1 Delivery=s3"', config)
    if n != 1:
        raise Failed("samconfig.toml has no parameter_overrides line to add Delivery=s3 to")
    (tmp / "samconfig.toml").write_text(config)
    (tmp / ".venv").symlink_to((ROOT / ".venv").resolve())
    built = tmp / ".aws-sam" / "build"
    built.mkdir(parents=True)
    text = TEMPLATE.read_text()
    text, n = re.subn(r"CodeUri: \.\./functions/([a-z]+)", lambda m: f"CodeUri: {LOCAL / 'functions' / m.group(1)}", text)
    missing = [m for m in re.findall(r"(?m)^ +CodeUri: (\S+)$", text) if not (Path(m) / "bootstrap").exists()]
    if not n or missing:
        raise Failed(f"no native bootstrap for {missing or 'any function'}: run make dev first")
    (built / "template.yaml").write_text(text)


def guided_answers() -> str:
    """stdin for `sam deploy --guided`: the README's first-run answers, in SAM's order."""
    answers = dict(ANSWERS, JwtIssuer=read_env()["SAFELIGHT_ISSUER_URL"])
    lines = [STACK, REGION]
    lines += [answers.get(name, "") for name in load_template()["Parameters"]]
    # Confirm changes before deploy, Allow IAM role creation, Disable rollback, Save arguments,
    # config file, config environment: the defaults. Then "Deploy this changeset?": y.
    lines += ["", "", "", "", "", "", "y"]
    return "\n".join(lines) + "\n"


def run(tmp: Path, env: dict, args: list[str], stdin: str = "", what: str = "") -> subprocess.CompletedProcess:
    out = subprocess.run(
        [str(tmp / ".venv" / "bin" / "python"), *args], cwd=tmp, env=env, input=stdin, capture_output=True, text=True
    )
    (LOCAL / "logs").mkdir(parents=True, exist_ok=True)
    with open(LOCAL / "logs" / "rehearse-deploy.log", "a") as f:
        f.write(f"\n===== {' '.join(args)}\n{out.stdout}\n{out.stderr}")
    return out


def main() -> int:
    import boto3

    endpoint = read_env()["AWS_ENDPOINT_URL"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", SAM_CLI_TELEMETRY="0")
    cfn = client("cloudformation", endpoint, REGION)
    (LOCAL / "logs" / "rehearse-deploy.log").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="safelight-rehearsal-") as d:
        tmp = Path(d)
        try:
            scratch_repo(tmp)

            if not boto3.session.Session().region_name:
                log("0. no region configured: make deploy says how to set one before asking anything")
                out = run(tmp, env, ["infra/release.py", "deploy"], guided_answers())
                if out.returncode == 0 or "no AWS region configured" not in out.stderr or "Stack Name" in out.stdout:
                    raise Failed(f"without a region the deploy did not stop with its advice: {out.stderr[-400:]}")
            env["AWS_REGION"] = REGION  # what the README asks a first-time deployer to set

            log("1. first make deploy: sam deploy --guided, answered as the README says")
            out = run(tmp, env, ["infra/release.py", "deploy"], guided_answers())
            if out.returncode != 0 or f"Successfully created/updated stack - {STACK}" not in out.stdout + out.stderr:
                raise Failed(f"guided deploy failed (exit {out.returncode}): {out.stderr[-600:]}")
            saved = (tmp / "samconfig.toml").read_text()
            for want in (f'stack_name = "{STACK}"', f'region = "{REGION}"', "JwtIssuer=", "AllowedOrigins="):
                if want not in saved:
                    raise Failed(f"the guided run did not save {want} to samconfig.toml")
            outputs = stack_outputs(cfn, STACK)

            # Emulator difference (plain http only): lift the TLS-only statement, as stackctl does.
            s3 = client("s3", endpoint, REGION)
            bucket = outputs["BucketName"]
            drop_tls_only_statements(s3, bucket)

            log("2. the post-deploy migration finds the saved stack and region by itself")
            out = run(tmp, env, ["infra/post_deploy.py"])
            if out.returncode != 0 or "backfill (" not in out.stdout:
                raise Failed(f"post_deploy.py failed (exit {out.returncode}): {out.stdout[-300:]} {out.stderr[-600:]}")
            out = run(tmp, env, ["infra/post_deploy.py"])
            if out.returncode != 0 or "the migration already ran" not in out.stdout:
                raise Failed(f"a second post_deploy.py was not the run-once refusal: {out.stdout[-300:]} {out.stderr[-300:]}")

            log("3. make deploy again: samconfig.toml's answers, nothing changed, exit 0")
            out = run(tmp, env, ["infra/release.py", "deploy"])
            if out.returncode != 0 or "No changes to deploy" not in out.stdout + out.stderr:
                raise Failed(f"the repeated deploy failed (exit {out.returncode}): {out.stderr[-600:]}")

            log("4. make destroy: a wrong answer deletes nothing; CONFIRM=<stack> deletes it all")
            s3.put_object(Bucket=bucket, Key="originals/rehearsal/one", Body=b"an original")
            out = run(tmp, env, ["infra/release.py", "destroy"], "not-the-stack\n")
            if out.returncode == 0 or cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"].startswith("DELETE"):
                raise Failed("destroy went ahead without the stack name typed")
            out = run(tmp, {**env, "CONFIRM": STACK}, ["infra/release.py", "destroy"])
            if out.returncode != 0:
                raise Failed(f"destroy failed (exit {out.returncode}): {out.stderr[-600:]}")
            try:
                status = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
            except cfn.exceptions.ClientError:
                status = "DELETE_COMPLETE"  # AWS's answer for a deleted stack: it does not exist
            groups = client("logs", endpoint, REGION).describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{STACK}/")["logGroups"]
            buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
            if status != "DELETE_COMPLETE" or groups or bucket in buckets:
                raise Failed(f"after destroy: stack {status}, log groups {[g['logGroupName'] for g in groups]}, "
                             f"bucket {'still there' if bucket in buckets else 'gone'}")
        except Failed as err:
            log(f"\033[31mFAILED: {err}\033[0m (log: .local/logs/rehearse-deploy.log)")
            return 1
    log("make deploy (guided, then with samconfig.toml), post-deploy and make destroy all behaved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
