"""The `make package` check that the Lambda zips hold no fault injection (run by `make test`):

- the marker it looks for is the one `safelight::faults` defines, and code every function runs at
  cold start uses it (wiring parses SAFELIGHT_FAULTS through `faults::Faults::parse`);
- a bootstrap containing the marker is refused, naming the function, and no zip is written;
- a faults-enabled control without the marker is refused too (the absence check is not vacuous).

    .venv/bin/python -m unittest infra.tests.test_release_faults -v   (or discover -s infra/tests)
"""

from __future__ import annotations

import re
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

import release  # noqa: E402
from releasing import package  # noqa: E402 - where the packaging checks read their paths

MARKER = release.fault_marker()


def binary(tmp: Path, name: str, payload: bytes) -> Path:
    path = tmp / name
    path.write_bytes(b"\x7fELF" + b"\0" * 64 + payload + b"\0" * 64)
    return path


class TheMarkerIsTheFaultModules(unittest.TestCase):
    def test_the_marker_is_the_constant_of_the_faults_module(self):
        source = release.FAULTS_MODULE.read_text()
        self.assertIn(f'pub const MARKER: &str = "{MARKER.decode()}";', source)

    def test_cold_start_code_uses_it_so_a_faults_build_carries_it(self):
        spec = (ROOT / "shared" / "src" / "faults" / "spec.rs").read_text()
        parse = spec[spec.index("pub fn parse(") : spec.index("pub fn enabled(")]
        self.assertRegex(parse, r"\bMARKER\b", "Faults::parse must use MARKER (it runs in every function)")
        wiring = (ROOT / "shared" / "src" / "aws" / "faults.rs").read_text()
        self.assertIn("crate::faults::Faults::parse(spec)", wiring)

    def test_only_the_faults_module_spells_it(self):
        hits = [
            p
            for p in (ROOT / "shared" / "src").rglob("*.rs")
            if MARKER.decode() in p.read_text() and "faults" not in p.relative_to(ROOT / "shared" / "src").parts[:1]
        ]
        self.assertEqual(hits, [], "the marker must not appear outside shared/src/faults/")

    def test_a_module_without_the_marker_is_an_error_not_a_pass(self):
        with tempfile.TemporaryDirectory() as tmp:
            module = Path(tmp) / "mod.rs"
            module.write_text("pub const OTHER: &str = \"x\";\n")
            with mock.patch.object(package, "ROOT", Path(tmp)):
                with self.assertRaisesRegex(release.ReleaseError, "MARKER"):
                    release.fault_marker(module)


class TheZipsHoldNoFaultInjection(unittest.TestCase):
    def test_a_binary_with_the_marker_is_refused_naming_the_function(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = binary(Path(tmp), "bootstrap", b"log text " + MARKER + b" more")
            with self.assertRaisesRegex(release.ReleaseError, r"function thumbnail .*`faults` cargo feature"):
                release.check_no_fault_injection("thumbnail", bad, MARKER)

    def test_a_binary_without_it_passes(self):
        with tempfile.TemporaryDirectory() as tmp:
            release.check_no_fault_injection("thumbnail", binary(Path(tmp), "bootstrap", b"clean"), MARKER)

    def test_a_control_without_the_marker_is_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            control = binary(Path(tmp), "ws", b"no decorator here")
            with self.assertRaisesRegex(release.ReleaseError, "vacuously"):
                release.check_fault_control("ws", control, MARKER)
            release.check_fault_control("ws", binary(Path(tmp), "ws2", MARKER), MARKER)

    def test_the_control_is_read_where_cargo_lambda_leaves_its_binary(self):
        # cargo-lambda moves the binary to target/lambda/<bin>/bootstrap; a path under
        # target/<triple>/release does not exist after its build (the first end-to-end
        # `make package` stopped there with FileNotFoundError).
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            with mock.patch.object(package, "target_dir", return_value=tmp), \
                    mock.patch.object(package.subprocess, "run") as run:
                built = package.build_fault_control("ws")
            self.assertEqual(built, tmp / "lambda" / "ws" / "bootstrap")
            command = run.call_args.args[0]
            self.assertEqual(command[:3], ["cargo", "lambda", "build"])
            self.assertIn("faults", command)

    def test_packaging_stops_at_a_faulty_bootstrap_and_writes_no_zip_for_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            build, dist = tmp / "build", tmp / "dist"
            for logical, payload in (("Clean", b"clean"), ("Faulty", MARKER)):
                (build / logical).mkdir(parents=True)
                binary(build / logical, "bootstrap", payload)
            facts = {"machine": "AArch64", "class": "ELF64", "max_glibc": (2, 17), "needed": []}
            with mock.patch.multiple(package, BUILD_DIR=build, DIST=dist, ROOT=tmp), \
                    mock.patch.object(package, "check_binary", return_value=facts), \
                    mock.patch.object(package, "fault_marker", return_value=MARKER):
                with self.assertRaisesRegex(release.ReleaseError, "function upload "):
                    release.check_and_zip({"images": "Clean", "upload": "Faulty"})
            self.assertTrue((dist / "images.zip").exists())
            self.assertFalse((dist / "upload.zip").exists())


if __name__ == "__main__":
    unittest.main()
