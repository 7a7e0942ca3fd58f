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

Everything but deploy/destroy runs offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "template.yaml"
BUILD_DIR = ROOT / ".aws-sam" / "build"
DIST = ROOT / "dist" / "lambda"
SAMCONFIG = ROOT / "samconfig.toml"
VENV_BIN = ROOT / ".venv" / "bin"
BUILD_METHOD = "rust-cargolambda"
RUNTIME = "provided.al2023"
# Amazon Linux 2023 ships glibc 2.34: a symbol version above it fails at load time on Lambda.
MAX_GLIBC = (2, 34)
# Shared libraries every provided.al2023 image has; anything else would be missing at run time.
SYSTEM_LIBS = {
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libutil.so.1",
    "libgcc_s.so.1",
    "ld-linux-aarch64.so.1",
}
MAX_UNZIPPED = 250 * 1024 * 1024  # Lambda's limit for a function's unzipped package
# Fault injection (the `faults` feature) is for local builds only; its module defines a marker
# text that only it puts in a binary.
FAULTS_MODULE = ROOT / "shared" / "src" / "faults" / "mod.rs"
# The function `package` builds a second time with the feature, to show the marker survives a
# release build (the smallest binary: the control costs one more compile of shared and one link).
FAULTS_CONTROL = "ws"
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed: an unchanged binary gives a byte-identical zip


class ReleaseError(Exception):
    """A packaging or deployment check failed; the message names what and where."""


def log(msg: str) -> None:
    print(f"\033[1m[release]\033[0m {msg}", file=sys.stderr)


def env_with_tools() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.setdefault("SAM_CLI_TELEMETRY", "0")
    return env


# ------------------------------------------------------------------ functions
def workspace_functions() -> dict[str, Path]:
    """Binary name -> crate directory, for every workspace member under functions/."""
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    found: dict[str, Path] = {}
    for pkg in meta["packages"]:
        crate = Path(pkg["manifest_path"]).parent
        if crate.parent != ROOT / "functions":
            continue
        for target in pkg["targets"]:
            if "bin" in target["kind"]:
                found[target["name"]] = crate
    return found


def load_template(path: Path = TEMPLATE) -> dict:
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(path))


def template_functions(template: dict) -> dict[str, dict]:
    """Logical id -> resource, for every AWS::Serverless::Function."""
    return {
        logical: res
        for logical, res in template.get("Resources", {}).items()
        if res.get("Type") == "AWS::Serverless::Function"
    }


def check_functions_match(template: dict, crates: dict[str, Path]) -> dict[str, str]:
    """Binary -> logical id. Fails unless crates and template functions pair up one to one, each
    built by SAM's cargo-lambda builder from its own crate for provided.al2023."""
    globals_fn = template.get("Globals", {}).get("Function", {})
    problems: list[str] = []
    by_binary: dict[str, str] = {}
    for logical, res in template_functions(template).items():
        props = res.get("Properties", {})
        meta = res.get("Metadata", {})
        binary = meta.get("BuildProperties", {}).get("Binary")
        if meta.get("BuildMethod") != BUILD_METHOD or not binary:
            problems.append(
                f"{logical}: needs Metadata BuildMethod: {BUILD_METHOD} and BuildProperties.Binary "
                "(sam build and make package must build it the same way)"
            )
            continue
        if binary not in crates:
            problems.append(f"{logical}: Binary '{binary}' is not a crate under functions/ in the workspace")
            continue
        want_uri = f"../functions/{crates[binary].name}"
        if props.get("CodeUri") != want_uri:
            problems.append(f"{logical}: CodeUri is {props.get('CodeUri')!r}, expected {want_uri!r} (its crate)")
        if props.get("Runtime", globals_fn.get("Runtime")) != RUNTIME:
            problems.append(f"{logical}: Runtime must be {RUNTIME}")
        if binary in by_binary:
            problems.append(f"{logical} and {by_binary[binary]} both build '{binary}'")
        by_binary[binary] = logical
    for binary, crate in sorted(crates.items()):
        if binary not in by_binary:
            problems.append(
                f"functions/{crate.name} (binary '{binary}') has no AWS::Serverless::Function in "
                f"infra/template.yaml with Metadata BuildMethod: {BUILD_METHOD}, Binary: {binary}"
            )
    if problems:
        raise ReleaseError("template and workspace disagree:\n  " + "\n  ".join(problems))
    return by_binary


# -------------------------------------------------------------------- checks
def readelf(*args: str) -> str:
    exe = shutil.which("readelf")
    if not exe:
        raise ReleaseError("readelf not found (apt-get install binutils)")
    return subprocess.run([exe, *args], check=True, capture_output=True, text=True).stdout


def elf_facts(binary: Path) -> dict:
    """Machine, class, newest GLIBC symbol version required and NEEDED libraries of an ELF file."""
    with open(binary, "rb") as f:
        if f.read(4) != b"\x7fELF":
            raise ReleaseError(f"{binary}: not an ELF file")
    header = readelf("-h", str(binary))
    machine = re.search(r"Machine:\s*(.+)", header)
    klass = re.search(r"Class:\s*(\S+)", header)
    versions = {
        tuple(int(x) for x in v.split("."))
        for v in re.findall(r"GLIBC_([0-9]+(?:\.[0-9]+)+)", readelf("-V", "--wide", str(binary)))
    }
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("-d", "--wide", str(binary)))
    return {
        "machine": machine.group(1).strip() if machine else "?",
        "class": klass.group(1) if klass else "?",
        "max_glibc": max(versions) if versions else None,
        "needed": needed,
    }


def check_binary(name: str, binary: Path) -> dict:
    facts = elf_facts(binary)
    problems = []
    if facts["machine"] != "AArch64" or facts["class"] != "ELF64":
        problems.append(f"is {facts['class']} {facts['machine']}, expected ELF64 AArch64 (arm64 Lambda)")
    if facts["max_glibc"] and facts["max_glibc"] > MAX_GLIBC:
        newest = ".".join(map(str, facts["max_glibc"]))
        problems.append(f"needs GLIBC_{newest}, newer than Amazon Linux 2023's {'.'.join(map(str, MAX_GLIBC))}")
    extra = sorted(set(facts["needed"]) - SYSTEM_LIBS)
    if extra:
        problems.append(f"links {', '.join(extra)}, not part of {RUNTIME}")
    size = binary.stat().st_size
    if size > MAX_UNZIPPED:
        problems.append(f"is {size} bytes unzipped, over Lambda's 250 MB")
    if problems:
        raise ReleaseError(f"function {name} ({binary}): " + "; ".join(problems))
    return facts


def fault_marker(module: Path = FAULTS_MODULE) -> bytes:
    """The text only the fault-injection module puts in a binary (`safelight::faults::MARKER`)."""
    found = re.search(r'pub const MARKER: &str = "([^"]+)";', module.read_text())
    if not found:
        raise ReleaseError(f"{module.relative_to(ROOT)} defines no `pub const MARKER: &str`: the "
                           "check that the Lambda zips hold no fault injection has nothing to look for")
    return found.group(1).encode()


def has_fault_injection(binary: Path, marker: bytes) -> bool:
    return marker in binary.read_bytes()


def check_no_fault_injection(name: str, binary: Path, marker: bytes) -> None:
    """A Lambda binary must not contain the fault-injection decorator (the `faults` feature)."""
    if has_fault_injection(binary, marker):
        raise ReleaseError(
            f"function {name} ({binary}): contains fault injection (the text {marker.decode()!r}): "
            "it was built with the `faults` cargo feature, which only local builds may have"
        )


def check_fault_control(name: str, binary: Path, marker: bytes) -> None:
    """A build with the `faults` feature must contain the marker, or its absence proves nothing."""
    if not has_fault_injection(binary, marker):
        raise ReleaseError(
            f"function {name} built with the `faults` feature ({binary}) lacks the text "
            f"{marker.decode()!r}: the check that the zips hold no fault injection would pass "
            "vacuously (is MARKER still used by code every function runs?)"
        )


def build_fault_control(name: str = FAULTS_CONTROL) -> Path:
    """`name` built as sam build builds it (cargo-lambda, release, arm64) plus `--features faults`.
    It replaces that function's binary in target/ only (the zip is already written); the next
    package relinks it without the feature."""
    log(f"control: cargo lambda build --release --arm64 --features faults --bin {name}")
    subprocess.run(
        ["cargo", "lambda", "build", "--release", "--arm64", "--features", "faults", "--bin", name],
        cwd=ROOT / "functions" / name,
        env=env_with_tools(),
        check=True,
    )
    return target_dir() / "aarch64-unknown-linux-gnu" / "release" / name


def write_zip(binary: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    info = zipfile.ZipInfo("bootstrap", date_time=ZIP_DATE)
    info.external_attr = (0o100755 & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(info, binary.read_bytes(), compresslevel=9)
    tmp.replace(out)


# ------------------------------------------------------------------ commands
def cmd_check_functions() -> None:
    by_binary = check_functions_match(load_template(), workspace_functions())
    print(" ".join(sorted(by_binary)))


def ensure_rust_target(target: str = "aarch64-unknown-linux-gnu") -> None:
    """The arm64 standard library for the cross-build (rustup; a no-op once installed)."""
    rustup = shutil.which("rustup")
    if not rustup:
        log(f"rustup not found: make sure the {target} target of your Rust toolchain is installed")
        return
    installed = subprocess.run([rustup, "target", "list", "--installed"], capture_output=True, text=True).stdout
    if target not in installed.split():
        log(f"rustup target add {target} (the Lambda functions are arm64)")
        subprocess.run([rustup, "target", "add", target], check=True)


def cmd_package() -> None:
    template = load_template()
    by_binary = check_functions_match(template, workspace_functions())
    ensure_rust_target()
    log(f"sam build ({BUILD_METHOD}, release, arm64, {RUNTIME}): {', '.join(sorted(by_binary))}")
    cold = not (target_dir() / "aarch64-unknown-linux-gnu" / "release").exists()
    loads: list[float] = []
    done = threading.Event()

    def sample_load() -> None:  # the machine's load while the build runs (make report prints it)
        while not done.is_set():
            loads.append(os.getloadavg()[0])
            done.wait(30)

    sampler = threading.Thread(target=sample_load, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        subprocess.run(
            [
                str(VENV_BIN / "sam"),
                "build",
                "--template-file",
                str(TEMPLATE),
                "--build-dir",
                str(BUILD_DIR),
                "--parameter-overrides",
                "Architecture=arm64",
            ],
            cwd=ROOT,
            env=env_with_tools(),
            check=True,
        )
    finally:
        done.set()
    seconds = time.monotonic() - started
    loads.append(os.getloadavg()[0])
    check_and_zip(by_binary)
    check_fault_control(FAULTS_CONTROL, build_fault_control(), fault_marker())
    log(f"control: {FAULTS_CONTROL} built with the `faults` feature contains the fault-injection marker; "
        "the zips do not")
    (DIST / "build.json").write_text(json.dumps({
        "seconds": round(seconds, 1),
        "functions": len(by_binary),
        "cold": cold,
        "cpus": os.cpu_count(),
        "load_min": min(loads),
        "load_max": max(loads),
        "load_median": statistics.median(loads),
    }, indent=2) + "\n")
    log(f"sam build took {seconds / 60:.1f} min ({'cold' if cold else 'warm'}), load average "
        f"{min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f}) on {os.cpu_count()} cores")


def target_dir() -> Path:
    meta = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return Path(json.loads(meta)["target_directory"])


def check_and_zip(by_binary: dict[str, str], only_present: bool = False) -> None:
    """Checks each built binary (.aws-sam/build/<LogicalId>/bootstrap), zips it into dist/lambda/
    and prints the sizes. With only_present, functions without a built binary are skipped (and
    named) instead of failing."""
    rows = []
    manifest = {}
    marker = fault_marker()
    for binary, logical in sorted(by_binary.items()):
        built = BUILD_DIR / logical / "bootstrap"
        if not built.is_file():
            if only_present:
                log(f"function {binary}: no {built.relative_to(ROOT)}; skipped")
                continue
            raise ReleaseError(f"function {binary}: sam build left no {built}")
        facts = check_binary(binary, built)
        check_no_fault_injection(binary, built, marker)
        out = DIST / f"{binary}.zip"
        write_zip(built, out)
        zipped, unzipped = out.stat().st_size, built.stat().st_size
        glibc = "GLIBC_" + ".".join(map(str, facts["max_glibc"])) if facts["max_glibc"] else "-"
        rows.append((binary, zipped, unzipped, glibc))
        manifest[binary] = {
            "logical_id": logical,
            "zip": str(out.relative_to(ROOT)),
            "zip_bytes": zipped,
            "unzipped_bytes": unzipped,
            "max_glibc": glibc,
            "machine": facts["machine"],
            "needed": facts["needed"],
        }
    (DIST / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"\n{'function':<12} {'zip':>10} {'unzipped':>10}  newest glibc symbol (≤ 2.34), arch")
    for binary, zipped, unzipped, glibc in rows:
        print(f"{binary:<12} {zipped / 1e6:>8.2f}MB {unzipped / 1e6:>8.2f}MB  {glibc}, aarch64")
    print(f"\n{len(rows)} zips in {DIST.relative_to(ROOT)}/ (checked: aarch64 ELF, glibc ≤ 2.34, {RUNTIME} "
          "libraries only, no fault injection)")


def cmd_check_built() -> None:
    """The checks and zips of `package` on binaries already in .aws-sam/build (no build)."""
    by_binary = check_functions_match(load_template(), workspace_functions())
    check_and_zip(by_binary, only_present=True)


def samconfig_deploy_params() -> dict:
    if not SAMCONFIG.exists():
        return {}
    with open(SAMCONFIG, "rb") as f:
        return tomllib.load(f).get("default", {}).get("deploy", {}).get("parameters", {})


def deploy_target() -> tuple[str, str | None]:
    """(stack name, region) of the deployment: STACK_NAME / AWS_REGION from the environment, else
    what samconfig.toml holds (a guided deploy saves the answers there), else `safelight` and the
    AWS CLI's default region. deploy, post_deploy.py and destroy all use this one answer."""
    glob: dict = {}
    if SAMCONFIG.exists():
        with open(SAMCONFIG, "rb") as f:
            glob = tomllib.load(f).get("default", {}).get("global", {}).get("parameters", {})
    params = samconfig_deploy_params()
    stack = os.environ.get("STACK_NAME") or params.get("stack_name") or glob.get("stack_name") or "safelight"
    region = os.environ.get("AWS_REGION") or params.get("region") or glob.get("region")
    return stack, region


def saved_parameters() -> dict[str, str]:
    """parameter_overrides of samconfig.toml as a dict (a string `K=V K="V W"` or a list)."""
    import shlex

    overrides = samconfig_deploy_params().get("parameter_overrides", "")
    items = overrides if isinstance(overrides, list) else shlex.split(overrides)
    return dict(item.split("=", 1) for item in items if "=" in item)


def first_deploy() -> bool:
    """True until a guided deploy saved this account's parameters (JwtIssuer) to samconfig.toml."""
    return not saved_parameters().get("JwtIssuer")


# ------------------------------------------------------------------ delivery
# The CloudFront signing key (docs/DELIVERY.md). The private half lives only in Secrets Manager
# (the images function reads it at cold start); the public half is a template parameter.
DELIVERY_KEYS = ("DeliveryPublicKey", "DeliveryPrivateKeySecretArn", "DeliveryKeySlot")
SECRET_RECOVERY_DAYS = 7


def delivery_secret_prefix(stack: str) -> str:
    return f"{stack}/delivery-signing-key/"


def delivers_by_cloudfront(saved: dict[str, str]) -> bool:
    """What the deploy will run with: samconfig.toml's Delivery, else the template's default."""
    return saved.get("Delivery", "cloudfront") == "cloudfront"


def new_key_pair() -> tuple[str, str]:
    """(private PKCS#8 PEM, public SubjectPublicKeyInfo PEM) of a new RSA 2048 key (CloudFront's size)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private.decode(), public_key_pem(key)


def public_key_pem(key) -> str:
    """The SubjectPublicKeyInfo PEM of a private key (an object, or its PEM text)."""
    from cryptography.hazmat.primitives import serialization

    if isinstance(key, str):
        key = serialization.load_pem_private_key(key.encode(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return public.decode()


def delivery_parameters(
    stack: str, saved: dict[str, str], deployed: dict[str, str], secrets, rotate: bool = False
) -> tuple[dict[str, str], str | None]:
    """The delivery key parameters this deploy passes, and the secret it retires (a rotation's
    old one, deleted after the deploy succeeds) or None.

    Delivery=s3 (in samconfig.toml) needs none. Otherwise, the first that has a key: the deployed
    stack's values; the ones given in samconfig.toml; a secret a failed first deploy left (its
    public half derived again); else a new pair in slot a. ROTATE skips to a new pair in the
    other slot (a CloudFront public key cannot be changed in place). `secrets` is a Secrets
    Manager client, called only when a secret must be found or made."""
    if not delivers_by_cloudfront(saved):
        return {}, None
    current = {k: deployed.get(k, "") for k in DELIVERY_KEYS}
    if not rotate:
        for found in (current, {k: saved.get(k, "") for k in DELIVERY_KEYS}):
            if found["DeliveryPublicKey"] and found["DeliveryPrivateKeySecretArn"]:
                return {**found, "DeliveryKeySlot": found["DeliveryKeySlot"] or "a"}, None
        left = secrets.list_secrets(Filters=[{"Key": "name", "Values": [delivery_secret_prefix(stack)]}])["SecretList"]
        if left:
            arn = max(left, key=lambda s: s["CreatedDate"])["ARN"]
            private = secrets.get_secret_value(SecretId=arn)["SecretString"]
            return {"DeliveryPublicKey": public_key_pem(private), "DeliveryPrivateKeySecretArn": arn, "DeliveryKeySlot": "a"}, None
    private, public = new_key_pair()
    name = delivery_secret_prefix(stack) + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    arn = secrets.create_secret(
        Name=name,
        Description=f"Private key CloudFront signed URLs of stack {stack} are signed with (PEM).",
        SecretString=private,
        Tags=[{"Key": "safelight:stack", "Value": stack}],
    )["ARN"]
    log(f"new CloudFront signing key: private half in secret {name}")
    slot = "b" if rotate and current["DeliveryKeySlot"] != "b" and current["DeliveryPublicKey"] else "a"
    retired = current["DeliveryPrivateKeySecretArn"] if rotate else ""
    return {"DeliveryPublicKey": public, "DeliveryPrivateKeySecretArn": arn, "DeliveryKeySlot": slot}, retired or None


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
    saved = samconfig_deploy_params().get("parameter_overrides", "")
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
    cmd = [
        str(VENV_BIN / "sam"),
        "deploy",
        "--template-file",
        str(built),
        "--config-file",
        str(SAMCONFIG),
    ]
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


def main(argv: list[str]) -> None:
    commands = {
        "check-functions": cmd_check_functions,
        "package": cmd_package,
        "check-built": cmd_check_built,
        "deploy": cmd_deploy,
        "target": cmd_target,
        "destroy": cmd_destroy,
    }
    if len(argv) != 1 or argv[0] not in commands:
        sys.exit(__doc__)
    try:
        commands[argv[0]]()
    except ReleaseError as err:
        sys.exit(f"\033[31m[release] {err}\033[0m")
    except subprocess.CalledProcessError as err:
        sys.exit(f"\033[31m[release] {' '.join(map(str, err.cmd[:3]))} failed (exit {err.returncode})\033[0m")


if __name__ == "__main__":
    main(sys.argv[1:])
