#!/usr/bin/env python3
"""Release tooling for AWS: `make package`, `make deploy`, `make destroy`.

  package   check that every function crate of the workspace is a function of infra/template.yaml
            built by SAM's cargo-lambda builder (and the reverse), run `sam build` (which runs
            `cargo lambda build --release --arm64 --bin <fn>` per function, provided.al2023), then
            check each binary (aarch64 ELF, no glibc symbol newer than 2.34, only libraries Amazon
            Linux 2023 ships, no fault injection: safelight::faults::MARKER absent), write one
            deterministic zip per function to dist/lambda/<fn>.zip and print their sizes; then
            build one function again with the `faults` feature, the same way, and check the
            marker is there (so the absence check cannot pass vacuously). Exit status 1 with a
            message naming the function on any failure.
  check-built  the checks and zips of `package` alone, on what .aws-sam/build already holds
  deploy    `sam deploy` of the built template: guided the first time (no JwtIssuer saved in
            samconfig.toml yet) or with GUIDED=1, with samconfig.toml's answers afterwards.
            Refuses an Architecture other than arm64 (the package is arm64). With Delivery=cloudfront
            (the default) it passes the CloudFront signing key: the deployed stack's, else the one
            you gave, else a new RSA 2048 pair whose private half it stores in a Secrets Manager
            secret {stack}/delivery-signing-key/{time}. ROTATE_DELIVERY_KEY=1 makes a new pair in
            the other key slot and, once deployed, schedules the old secret's deletion.
  target    print the deployment's stack name and region (STACK_NAME / AWS_REGION, else
            samconfig.toml, else `safelight`): what deploy's post-deploy step and destroy act on.
  destroy   empty the stack's bucket (every version) and `sam delete` the stack, after confirming;
            then schedule the deletion of its delivery signing-key secrets (7-day recovery window).

Everything but deploy/destroy runs offline. The commands live in infra/releasing/ (package.py,
deploy.py, delivery_key.py); this file is their entry point.
"""

from __future__ import annotations

import subprocess
import sys

# Every name of infra/releasing/, re-exported: post_deploy.py and the tests use `release.<name>`.
from releasing import *  # noqa: F401,F403
from releasing.delivery_key import *  # noqa: F401,F403
from releasing.deploy import *  # noqa: F401,F403
from releasing.package import *  # noqa: F401,F403
from releasing import ReleaseError
from releasing.deploy import cmd_deploy, cmd_destroy, cmd_target
from releasing.package import cmd_check_built, cmd_check_functions, cmd_package

COMMANDS = {
    "check-functions": cmd_check_functions,
    "package": cmd_package,
    "check-built": cmd_check_built,
    "deploy": cmd_deploy,
    "target": cmd_target,
    "destroy": cmd_destroy,
}


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in COMMANDS:
        sys.exit(__doc__)
    try:
        COMMANDS[argv[0]]()
    except ReleaseError as err:
        sys.exit(f"\033[31m[release] {err}\033[0m")
    except subprocess.CalledProcessError as err:
        sys.exit(f"\033[31m[release] {' '.join(map(str, err.cmd[:3]))} failed (exit {err.returncode})\033[0m")


if __name__ == "__main__":
    main(sys.argv[1:])
