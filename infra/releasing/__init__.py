"""The release tooling behind infra/release.py (`make package`, `make deploy`, `make destroy`): one
module per job, and what they share here: the repository's paths, the error every check raises,
logging, the environment the SAM CLI runs in, the template.

- `package`: function crates vs template, `sam build`, the checks of each binary, the zips;
- `delivery_key`: the CloudFront signing key a deploy passes (made, found, rotated);
- `deploy`: samconfig.toml's answers, `sam deploy`, the deployment's target, `destroy`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
BUILD_DIR = ROOT / ".aws-sam" / "build"
VENV_BIN = ROOT / ".venv" / "bin"


class ReleaseError(Exception):
    """A packaging or deployment check failed; the message names what and where."""


def log(msg: str) -> None:
    print(f"\033[1m[release]\033[0m {msg}", file=sys.stderr)


def env_with_tools() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.setdefault("SAM_CLI_TELEMETRY", "0")
    return env


def load_template(path: Path = TEMPLATE) -> dict:
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(path))
