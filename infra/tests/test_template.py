"""Offline checks of infra/template.yaml (run by `make test`, ~1 s):

- every invariant of `infra/checks/invariants.py` holds for the real template; a failure names
  the invariant and the resource that breaks it;
- each invariant really fails on a template broken on purpose (so none of them is vacuous);
- every function crate of the workspace is a template function built by SAM's cargo-lambda
  builder, and the reverse (what `make package` relies on).

    .venv/bin/python -m unittest discover -s infra/tests -v
"""

from __future__ import annotations

import copy
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

from checks import invariants as inv  # noqa: E402
from checks.invariants import INVARIANTS, resources  # noqa: E402
import release  # noqa: E402

TEMPLATE = release.load_template()


class TheTemplateHoldsEveryInvariant(unittest.TestCase):
    """One test per invariant, named after it."""


def _make_invariant_test(check):
    def test(self):
        broken = check(TEMPLATE)
        self.assertEqual(broken, [], f"invariant broken: {inv.title(check)}:\n  " + "\n  ".join(broken))

    test.__doc__ = inv.title(check)
    return test


for _check in INVARIANTS:
    setattr(TheTemplateHoldsEveryInvariant, f"test_{_check.__name__}", _make_invariant_test(_check))


def first(kind: str, t: dict, pred=lambda name, res: True) -> tuple[str, dict]:
    for name, res in resources(t, kind).items():
        if pred(name, res):
            return name, res
    raise AssertionError(f"the template has no {kind} to break")


def sqs_source_queue(t: dict) -> dict:
    for _, kind, src, _ in inv.event_sources(t):
        if kind == "SQS":
            return t["Resources"][src]
    raise AssertionError("no SQS event source")


def sqs_event(t: dict) -> dict:
    for fn in resources(t, "AWS::Serverless::Function").values():
        for ev in (fn["Properties"].get("Events") or {}).values():
            if ev["Type"] == "SQS":
                return ev["Properties"]
    raise AssertionError("no SQS event")


def stream_event(t: dict) -> dict:
    for fn in resources(t, "AWS::Serverless::Function").values():
        for ev in (fn["Properties"].get("Events") or {}).values():
            if ev["Type"] == "DynamoDB":
                return ev["Properties"]
    raise AssertionError("no stream event")


def first_policy_statement(t: dict) -> dict:
    _, fn = first("AWS::Serverless::Function", t, lambda n, r: r["Properties"].get("Policies"))
    return fn["Properties"]["Policies"][0]["Statement"][0]


def schedule_event(t: dict) -> dict:
    for fn in resources(t, "AWS::Serverless::Function").values():
        for ev in (fn["Properties"].get("Events") or {}).values():
            if ev["Type"] in inv.EVENTBRIDGE_EVENT_TYPES:
                return ev["Properties"]
    raise AssertionError("no Schedule / EventBridgeRule event")


def function_log_group(t: dict) -> dict:
    """The AWS::Logs::LogGroup the first function logs to."""
    name, fn = first("AWS::Serverless::Function", t)
    group, _ = inv.log_group_of(t, name, fn)
    if group is None:
        raise AssertionError(f"{name} has no log group to break")
    return t["Resources"][group]


def drop_first_function_alarm(t: dict) -> None:
    name = next(k for k, a in resources(t, "AWS::CloudWatch::Alarm").items() if a["Properties"]["Namespace"] == "AWS/Lambda")
    del t["Resources"][name]


def drop_first_dlq_alarm(t: dict) -> None:
    name = next(
        k for k, a in resources(t, "AWS::CloudWatch::Alarm").items()
        if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    )
    del t["Resources"][name]


def drop_first_age_alarm(t: dict) -> None:
    name = next(
        k for k, a in resources(t, "AWS::CloudWatch::Alarm").items()
        if a["Properties"]["MetricName"] == "ApproximateAgeOfOldestMessage"
    )
    del t["Resources"][name]


def drop_first_breaker_alarm(t: dict) -> None:
    name = next(k for k, a in resources(t, "AWS::CloudWatch::Alarm").items() if a["Properties"]["MetricName"] == "BreakerOpened")
    del t["Resources"][name]


def drop_route_setting(t: dict) -> None:
    _, stage = first("AWS::ApiGatewayV2::Stage", t, lambda n, r: r["Properties"].get("RouteSettings"))
    settings = stage["Properties"]["RouteSettings"]
    del settings[next(iter(settings))]


# Each breakage: (invariant it must trip, how to break a copy of the template).
BREAKAGES = {
    "visibility_is_at_least_six_times_the_consumer_timeout":
        lambda t: sqs_source_queue(t)["Properties"].update(VisibilityTimeout=60),
    "every_consumed_queue_redrives_to_a_dlq_after_three_receives":
        lambda t: sqs_source_queue(t)["Properties"]["RedrivePolicy"].update(maxReceiveCount=5),
    "dlq_retention_exceeds_its_source_queue_retention":
        lambda t: sqs_source_queue(t)["Properties"].update(MessageRetentionPeriod=1209600),
    "every_sqs_and_stream_source_reports_batch_item_failures":
        lambda t: stream_event(t).pop("FunctionResponseTypes"),
    "no_star_resource_except_where_aws_requires_it":
        lambda t: first_policy_statement(t).update(Resource="*"),
    "every_bucket_blocks_public_access":
        lambda t: first("AWS::S3::Bucket", t)[1]["Properties"]["PublicAccessBlockConfiguration"].update(BlockPublicPolicy=False),
    "every_bucket_policy_denies_requests_without_tls":
        lambda t: t["Resources"].pop(first("AWS::S3::BucketPolicy", t)[0]),
    "every_bucket_aborts_incomplete_multipart_uploads":
        lambda t: first("AWS::S3::Bucket", t)[1]["Properties"].pop("LifecycleConfiguration"),
    "allowed_origins_are_a_parameter_without_a_star":
        lambda t: t["Parameters"]["AllowedOrigins"].update(Default="*"),
    "every_api_stage_throttles_and_every_post_route_has_its_own_limit": drop_route_setting,
    "every_sqs_source_caps_its_concurrency": lambda t: sqs_event(t).pop("ScalingConfig"),
    "every_stream_source_has_an_on_failure_destination": lambda t: stream_event(t).pop("DestinationConfig"),
    "every_event_rule_target_has_a_dead_letter_queue":
        lambda t: first("AWS::Events::Rule", t)[1]["Properties"]["Targets"][0].pop("DeadLetterConfig"),
    "every_scheduled_or_rule_event_of_a_function_has_a_dead_letter_queue":
        lambda t: schedule_event(t).pop("DeadLetterConfig"),
    "every_function_logs_to_its_own_log_group_with_retention":
        lambda t: function_log_group(t)["Properties"].pop("RetentionInDays"),
    "every_function_has_error_and_throttle_alarms": drop_first_function_alarm,
    "every_dead_letter_queue_alarms_when_not_empty": drop_first_dlq_alarm,
    "every_consumed_queue_alarms_on_the_age_of_its_oldest_message": drop_first_age_alarm,
    "every_breaker_stage_alarms_when_its_breaker_opens": drop_first_breaker_alarm,
    "every_alarm_notifies_the_alarm_topic":
        lambda t: first("AWS::CloudWatch::Alarm", t)[1]["Properties"].update(AlarmActions=[]),
    "every_queue_is_encrypted":
        lambda t: first("AWS::SQS::Queue", t)[1]["Properties"].pop("SqsManagedSseEnabled"),
    "the_template_has_a_dashboard": lambda t: t["Resources"].pop(first("AWS::CloudWatch::Dashboard", t)[0]),
}


class EachInvariantFailsOnATemplateThatBreaksIt(unittest.TestCase):
    def test_every_invariant_has_a_breakage(self):
        self.assertEqual(sorted(BREAKAGES), sorted(c.__name__ for c in INVARIANTS))

    def test_a_broken_template_trips_exactly_the_invariant_it_breaks(self):
        for check in INVARIANTS:
            with self.subTest(invariant=check.__name__):
                broken = copy.deepcopy(TEMPLATE)
                BREAKAGES[check.__name__](broken)
                self.assertNotEqual(check(broken), [], f"{check.__name__} did not notice its breakage")


class LogRetentionAndScheduleDeadLettersNameWhatIsMissing(unittest.TestCase):
    """The invariants added for log retention and the schedule's dead-letter queue, broken in
    each of the ways a template edit would break them."""

    def broken(self, edit) -> dict:
        t = copy.deepcopy(TEMPLATE)
        edit(t)
        return t

    def test_a_function_without_its_log_group_is_named(self):
        t = self.broken(lambda t: t["Resources"]["SweeperFunction"]["Properties"].pop("LoggingConfig"))
        found = inv.every_function_logs_to_its_own_log_group_with_retention(t)
        self.assertEqual(len(found), 1, found)
        self.assertIn("SweeperFunction: logs to no AWS::Logs::LogGroup", found[0])

    def test_a_log_group_without_retention_is_named_with_its_function(self):
        t = self.broken(lambda t: t["Resources"]["ThumbnailLogGroup"]["Properties"].pop("RetentionInDays"))
        self.assertEqual(
            inv.every_function_logs_to_its_own_log_group_with_retention(t),
            ["ThumbnailFunction: its log group ThumbnailLogGroup has no RetentionInDays (logs kept forever)"],
        )

    def test_two_functions_sharing_a_log_group_are_named(self):
        t = self.broken(
            lambda t: t["Resources"]["VariantFunction"]["Properties"]["LoggingConfig"].update(
                LogGroup={"Ref": "ThumbnailLogGroup"}
            )
        )
        found = inv.every_function_logs_to_its_own_log_group_with_retention(t)
        self.assertTrue(any("shares its log group ThumbnailLogGroup" in f for f in found), found)

    def test_a_group_named_after_the_function_also_counts(self):
        def edit(t):
            t["Resources"]["AdminFunction"]["Properties"].pop("LoggingConfig")
            t["Resources"]["AdminLogGroup"]["Properties"]["LogGroupName"] = {"Fn::Sub": "/aws/lambda/${AdminFunction}"}

        self.assertEqual(inv.every_function_logs_to_its_own_log_group_with_retention(self.broken(edit)), [])

    def test_a_schedule_without_a_dead_letter_queue_is_named(self):
        t = self.broken(
            lambda t: t["Resources"]["SweeperFunction"]["Properties"]["Events"]["Every5Minutes"]["Properties"].pop(
                "DeadLetterConfig"
            )
        )
        self.assertEqual(
            inv.every_scheduled_or_rule_event_of_a_function_has_a_dead_letter_queue(t),
            ["SweeperFunction: its Schedule event Every5Minutes has no DeadLetterConfig"],
        )

    def test_a_sam_generated_schedule_queue_is_refused(self):
        t = self.broken(
            lambda t: t["Resources"]["SweeperFunction"]["Properties"]["Events"]["Every5Minutes"]["Properties"].update(
                DeadLetterConfig={"Type": "SQS"}
            )
        )
        found = inv.every_scheduled_or_rule_event_of_a_function_has_a_dead_letter_queue(t)
        self.assertEqual(len(found), 1, found)
        self.assertIn("not Arn: !GetAtt <a queue of this template>", found[0])

    def test_the_schedule_dead_letter_queue_needs_its_depth_alarm(self):
        t = self.broken(lambda t: t["Resources"].pop("SweeperScheduleDlqDepthAlarm"))
        self.assertEqual(
            inv.every_dead_letter_queue_alarms_when_not_empty(t),
            ["SweeperScheduleDeadLetterQueue: no alarm on ApproximateNumberOfMessagesVisible > 0"],
        )


class WorkspaceFunctionsAndTemplateFunctionsPairUp(unittest.TestCase):
    def test_every_function_crate_is_built_by_sam_cargo_lambda_and_vice_versa(self):
        try:
            pairs = release.check_functions_match(TEMPLATE, release.workspace_functions())
        except release.ReleaseError as err:
            self.fail(str(err))
        self.assertTrue(pairs)

    def test_a_crate_missing_from_the_template_is_named(self):
        crates = release.workspace_functions()
        crates["resize2"] = ROOT / "functions" / "resize2"
        with self.assertRaisesRegex(release.ReleaseError, r"functions/resize2 .*no AWS::Serverless::Function"):
            release.check_functions_match(TEMPLATE, crates)


class ThePackageChecksRefuseWhatLambdaCannotRun(unittest.TestCase):
    def test_a_binary_for_another_architecture_is_refused_naming_the_function(self):
        native = Path("/bin/true")  # this machine's own architecture, not arm64 (CI is x86_64)
        if release.elf_facts(native)["machine"] == "AArch64":
            self.skipTest("the host is arm64")
        with self.assertRaisesRegex(release.ReleaseError, r"function thumbnail .*expected ELF64 AArch64"):
            release.check_binary("thumbnail", native)

    def test_a_file_that_is_not_elf_is_refused(self):
        with self.assertRaisesRegex(release.ReleaseError, "not an ELF file"):
            release.check_binary("upload", Path(__file__))


if __name__ == "__main__":
    unittest.main()
