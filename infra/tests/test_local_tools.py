"""Offline checks of infra/local's tools without an emulator: the stack.env round trip, the fix-ups'
translations of the template, and stackctl's environment commands against a recording client.

    .venv/bin/python -m unittest discover -s infra/tests -v
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))

import fixups  # noqa: E402
import stackctl  # noqa: E402
import stackenv  # noqa: E402


class Recorder:
    """A boto3 client stand-in: answers from `answers` by operation name, records every call."""

    class exceptions:
        class ClientError(Exception):
            def __init__(self, code: str):
                self.response = {"Error": {"Code": code}}

    def __init__(self, **answers):
        self.answers, self.calls = answers, []

    def __getattr__(self, op):
        def call(**kw):
            self.calls.append((op, kw))
            answer = self.answers.get(op, {})
            if isinstance(answer, Exception):
                raise answer
            return answer
        return call


def tls_only(effect: str = "Deny") -> dict:
    return {"Effect": effect, "Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


class TheStackEnvFileRoundTrips(unittest.TestCase):
    def test_what_write_env_quotes_read_env_reads_back(self):
        with tempfile.TemporaryDirectory() as d, mock.patch.object(stackenv, "LOCAL", Path(d)):
            values = {"A": "http://127.0.0.1:4566", "B": "two words", "C": ""}
            lines = ["# a comment line"] + [f"{k}={stackctl.shell_quote(v)}" for k, v in values.items()]
            (Path(d) / "stack.env").write_text("\n".join(lines) + "\n")
            self.assertEqual(stackenv.read_env(), values)


class TheTlsOnlyStatementIsTheOnlyOneLiftedLocally(unittest.TestCase):
    def test_only_statements_conditioned_on_secure_transport_go(self):
        keep = {"Effect": "Allow", "Action": "s3:GetObject", "Principal": "*"}
        s3 = Recorder(get_bucket_policy={"Policy": json.dumps({"Statement": [tls_only(), keep]})})
        fixups.drop_tls_only_statements(s3, "b")
        self.assertEqual([op for op, _ in s3.calls], ["get_bucket_policy", "put_bucket_policy"])
        self.assertEqual(json.loads(s3.calls[1][1]["Policy"])["Statement"], [keep])

    def test_a_policy_of_tls_statements_only_is_deleted_and_one_without_is_left_alone(self):
        s3 = Recorder(get_bucket_policy={"Policy": json.dumps({"Statement": tls_only()})})
        fixups.drop_tls_only_statements(s3, "b")
        self.assertEqual([op for op, _ in s3.calls], ["get_bucket_policy", "delete_bucket_policy"])
        for answer in ({"Policy": json.dumps({"Statement": [{"Effect": "Allow"}]})},
                       Recorder.exceptions.ClientError("NoSuchBucketPolicy")):
            s3 = Recorder(get_bucket_policy=answer)
            fixups.drop_tls_only_statements(s3, "b")
            self.assertEqual([op for op, _ in s3.calls], ["get_bucket_policy"])


class TheTemplatesLifecycleRulesTranslateToTheS3Api(unittest.TestCase):
    def test_every_rule_of_the_template_is_translated_with_its_prefix_and_expiries(self):
        template = stackenv.load_template()
        rules = fixups.template_lifecycle_rules()
        for bucket, translated in rules.items():
            source = template["Resources"][bucket]["Properties"]["LifecycleConfiguration"]["Rules"]
            self.assertEqual([r["ID"] for r in translated], [r["Id"] for r in source])
            for want, got in zip(source, translated):
                self.assertEqual(got["Filter"], {"Prefix": want.get("Prefix", "")})
                self.assertEqual("ExpirationInDays" in want, "Days" in got.get("Expiration", {}))
        self.assertTrue(rules, "the template has lifecycle rules to translate")


class SetEnvPrintsTheOldValueAndWritesOnlyAChange(unittest.TestCase):
    def run_set_env(self, env: dict, *args: str) -> tuple[str, Recorder]:
        lam = Recorder(get_function_configuration={"Environment": {"Variables": env}})
        out = io.StringIO()
        with mock.patch.object(stackctl, "client", lambda service: lam), contextlib.redirect_stdout(out):
            stackctl.cmd_set_env("deployed-name", *args)
        return out.getvalue(), lam

    def test_setting_prints_the_previous_value_and_updates(self):
        printed, lam = self.run_set_env({"X": "old"}, "X", "new")
        self.assertEqual(printed, "old\n")
        self.assertEqual(lam.calls[-1], ("update_function_configuration",
                                         {"FunctionName": "deployed-name", "Environment": {"Variables": {"X": "new"}}}))

    def test_an_empty_value_removes_and_an_unchanged_one_writes_nothing(self):
        _, lam = self.run_set_env({"X": "old", "Y": "1"}, "X", "")
        self.assertEqual(lam.calls[-1][1]["Environment"], {"Variables": {"Y": "1"}})
        printed, lam = self.run_set_env({"X": "same"}, "X", "same")
        self.assertEqual((printed, [op for op, _ in lam.calls]), ("same\n", ["get_function_configuration"]))


if __name__ == "__main__":
    unittest.main()
