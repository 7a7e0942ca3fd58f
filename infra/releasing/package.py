"""`make package`: every function crate of the workspace is a function of infra/template.yaml built
by SAM's cargo-lambda builder (and the reverse); `sam build`; each binary checked (aarch64 ELF, glibc,
Amazon Linux 2023's libraries, size, no fault injection) and zipped deterministically into
dist/lambda/; then one function built again with the `faults` feature to show the marker the
absence check looks for survives a release build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
import zipfile
from pathlib import Path

from releasing import BUILD_DIR, ROOT, TEMPLATE, VENV_BIN, ReleaseError, env_with_tools, load_template, log

DIST = ROOT / "dist" / "lambda"
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


def cargo_metadata() -> dict:
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def workspace_functions() -> dict[str, Path]:
    """Binary name -> crate directory, for every workspace member under functions/."""
    meta = cargo_metadata()
    found: dict[str, Path] = {}
    for pkg in meta["packages"]:
        crate = Path(pkg["manifest_path"]).parent
        if crate.parent != ROOT / "functions":
            continue
        for target in pkg["targets"]:
            if "bin" in target["kind"]:
                found[target["name"]] = crate
    return found


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
    # cargo-lambda moves the linked binary out of target/<triple>/release into
    # target/lambda/<bin>/bootstrap (measured: the former no longer exists after the build).
    return target_dir() / "lambda" / name / "bootstrap"


def write_zip(binary: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    info = zipfile.ZipInfo("bootstrap", date_time=ZIP_DATE)
    info.external_attr = (0o100755 & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(info, binary.read_bytes(), compresslevel=9)
    tmp.replace(out)


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
    return Path(cargo_metadata()["target_directory"])


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
