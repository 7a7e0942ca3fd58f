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
    name = next(k for k, a in resources(t, "AWS::CloudWatch::Alarm").items() if a["Properties"].get("Namespace") == "AWS/Lambda")
    del t["Resources"][name]


def dlq_alarms(t: dict) -> dict[str, str]:
    """Alarm logical id -> the DLQ it watches, for every alarm reading a dead-letter queue."""
    dlqs = inv.dead_letter_queues(t)
    found = {}
    for name, a in resources(t, "AWS::CloudWatch::Alarm").items():
        for _, queue in inv.alarm_queue_metrics(a).values():
            if queue in dlqs:
                found[name] = queue
    return found


def drop_first_dlq_alarm(t: dict) -> None:
    del t["Resources"][next(iter(dlq_alarms(t)))]


def as_depth_alarm(alarm: dict, queue: str) -> None:
    """Turns a DLQ alarm back into the old kind: visible letters > 0 (stays in ALARM while kept)."""
    p = alarm["Properties"]
    for key in ("Metrics", "DatapointsToAlarm"):
        p.pop(key, None)
    p.update(
        Namespace="AWS/SQS", MetricName="ApproximateNumberOfMessagesVisible", Statistic="Maximum", Period=60,
        Dimensions=[{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}],
        EvaluationPeriods=1, Threshold=0, ComparisonOperator="GreaterThanThreshold",
    )


def returned_expression(alarm: dict) -> dict:
    return next(m for m in alarm["Properties"]["Metrics"] if m.get("ReturnData", True) and m.get("Expression"))


def lifecycle_rule(t: dict, rule_id: str) -> dict:
    rules = t["Resources"]["ImagesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    return next(r for r in rules if r["Id"] == rule_id)


def drop_statement(t: dict, function: str, action: str) -> None:
    statements = t["Resources"][function]["Properties"]["Policies"][0]["Statement"]
    statements[:] = [st for st in statements if action not in inv.as_list(st["Action"])]


def drop_first_age_alarm(t: dict) -> None:
    name = next(
        k for k, a in resources(t, "AWS::CloudWatch::Alarm").items()
        if a["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage"
    )
    del t["Resources"][name]


def drop_first_breaker_alarm(t: dict) -> None:
    name = next(k for k, a in resources(t, "AWS::CloudWatch::Alarm").items() if a["Properties"].get("MetricName") == "BreakerOpened")
    del t["Resources"][name]


def drop_route_setting(t: dict) -> None:
    _, stage = first("AWS::ApiGatewayV2::Stage", t, lambda n, r: r["Properties"].get("RouteSettings"))
    settings = stage["Properties"]["RouteSettings"]
    del settings[next(iter(settings))]


# Each breakage: (invariant it must trip, how to break a copy of the template).
def unconditional_legacy_status_index(t: dict) -> None:
    gsis = t["Resources"]["ImagesTable"]["Properties"]["GlobalSecondaryIndexes"]
    for i, gsi in enumerate(gsis):
        if "Fn::If" in gsi:
            gsis[i] = gsi["Fn::If"][1]


BREAKAGES = {
    "status_indexes_are_sharded_and_any_index_on_the_bare_status_can_be_dropped": unconditional_legacy_status_index,
    "visibility_is_at_least_six_times_the_consumer_timeout":
        lambda t: sqs_source_queue(t)["Properties"].update(VisibilityTimeout=60),
    "every_consumed_queue_redrives_to_a_dlq_after_three_receives":
        lambda t: sqs_source_queue(t)["Properties"]["RedrivePolicy"].update(maxReceiveCount=5),
    "dlq_retention_exceeds_its_source_queue_retention_or_both_are_the_maximum":
        lambda t: t["Resources"][inv.ref_target(sqs_source_queue(t)["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])][
            "Properties"].update(MessageRetentionPeriod=345600),
    "processing_queues_retain_messages_fourteen_days":
        lambda t: sqs_source_queue(t)["Properties"].pop("MessageRetentionPeriod"),
    "no_lifecycle_rule_expires_anything_under_originals":
        lambda t: lifecycle_rule(t, "expire-replaced-thumbnails").pop("Prefix"),
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
    "every_api_stage_writes_json_access_logs_to_a_group_with_retention":
        lambda t: t["Resources"]["HttpApiStage"]["Properties"].pop("AccessLogSettings"),
    "every_admin_route_requires_the_admin_scope_and_no_other_route_does":
        lambda t: t["Resources"]["AdminRetryAllFailedRoute"]["Properties"].pop("AuthorizationScopes"),
    "every_sqs_source_caps_its_concurrency": lambda t: sqs_event(t).pop("ScalingConfig"),
    "processor_concurrency_defaults_cover_the_design_point":
        lambda t: t["Parameters"]["VariantMaxConcurrency"].update(Default=10),
    "every_stream_source_has_an_on_failure_destination": lambda t: stream_event(t).pop("DestinationConfig"),
    "every_event_rule_target_has_a_dead_letter_queue":
        lambda t: first("AWS::Events::Rule", t)[1]["Properties"]["Targets"][0].pop("DeadLetterConfig"),
    "every_scheduled_or_rule_event_of_a_function_has_a_dead_letter_queue":
        lambda t: schedule_event(t).pop("DeadLetterConfig"),
    "every_function_logs_to_its_own_log_group_with_retention":
        lambda t: function_log_group(t)["Properties"].pop("RetentionInDays"),
    "every_function_has_error_and_throttle_alarms": drop_first_function_alarm,
    "every_dead_letter_queue_alarms_on_new_letters": drop_first_dlq_alarm,
    "every_consumed_queue_alarms_on_the_age_of_its_oldest_message": drop_first_age_alarm,
    "every_breaker_stage_alarms_when_its_breaker_opens": drop_first_breaker_alarm,
    "every_alarm_notifies_the_alarm_topic":
        lambda t: first("AWS::CloudWatch::Alarm", t)[1]["Properties"].update(AlarmActions=[]),
    "every_topic_an_alarm_notifies_is_unencrypted_or_uses_a_key_cloudwatch_may_use":
        lambda t: t["Resources"]["AlarmTopic"]["Properties"].update(KmsMasterKeyId="alias/aws/sns"),
    "every_queue_is_encrypted":
        lambda t: first("AWS::SQS::Queue", t)[1]["Properties"].pop("SqsManagedSseEnabled"),
    "every_queue_a_function_is_given_is_in_its_policy":
        lambda t: drop_statement(t, "SweeperFunction", "sqs:SendMessage"),
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


class AdminRoutesNeedTheAdminScope(unittest.TestCase):
    """Admin is the AdminScope OAuth scope, checked by API Gateway on every /api/admin/ route and
    by the admin function; no other route asks for a scope."""

    def broken(self, edit) -> dict:
        t = copy.deepcopy(TEMPLATE)
        edit(t)
        return t

    def test_every_admin_route_names_the_admin_scope_and_no_other_route_names_one(self):
        routes = inv.http_routes(TEMPLATE)
        admin = {k for k in routes if k.split(" ", 1)[1].startswith("/api/admin/")}
        self.assertEqual(admin, {
            "GET /api/admin/processing-queue",
            "POST /api/admin/retry-all-failed",
            "POST /api/admin/circuits/{stage}/reset",
        })
        for key, (name, route) in routes.items():
            scopes = route["Properties"].get("AuthorizationScopes")
            if key in admin:
                self.assertEqual(scopes, [{"Ref": "AdminScope"}], name)
            else:
                self.assertIsNone(scopes, name)
        self.assertEqual(TEMPLATE["Parameters"]["AdminScope"]["Default"], "safelight/admin")
        env = TEMPLATE["Resources"]["AdminFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(env["ADMIN_SCOPE"], {"Ref": "AdminScope"})

    def test_an_admin_route_without_the_scope_is_named(self):
        t = self.broken(lambda t: t["Resources"]["AdminCircuitResetRoute"]["Properties"].update(AuthorizationScopes=["admin"]))
        self.assertEqual(
            inv.every_admin_route_requires_the_admin_scope_and_no_other_route_does(t),
            ["AdminCircuitResetRoute: admin route 'POST /api/admin/circuits/{stage}/reset' has AuthorizationScopes "
             "['admin'], not [!Ref AdminScope]"],
        )

    def test_a_user_route_asking_for_a_scope_is_named(self):
        t = self.broken(lambda t: t["Resources"]["ListImagesRoute"]["Properties"].update(
            AuthorizationScopes=[{"Ref": "AdminScope"}]))
        found = inv.every_admin_route_requires_the_admin_scope_and_no_other_route_does(t)
        self.assertEqual(len(found), 1, found)
        self.assertIn("ListImagesRoute: route 'GET /api/images' is not an admin route", found[0])

    def test_an_admin_function_checking_another_scope_is_named(self):
        t = self.broken(lambda t: t["Resources"]["AdminFunction"]["Properties"]["Environment"]["Variables"].pop("ADMIN_SCOPE"))
        self.assertEqual(
            inv.every_admin_route_requires_the_admin_scope_and_no_other_route_does(t),
            ["AdminFunction: serves admin routes but its ADMIN_SCOPE is not !Ref AdminScope"],
        )

    def test_the_admin_scope_parameter_accepts_one_scope_only(self):
        import re
        pattern = TEMPLATE["Parameters"]["AdminScope"]["AllowedPattern"]
        for ok in ("safelight/admin", "https://api.example.com/admin", "x,admin"):
            self.assertRegex(ok, pattern)
        for bad in ("safelight/admin openid", "", 'a"b', "a\\b"):
            self.assertIsNone(re.match(pattern, bad), bad)


class ApiAccessLogsSayWhoDidWhatAndNoSecret(unittest.TestCase):
    """Both APIs write one JSON line per request to a log group with retention: request id, ip,
    time, route, status, the caller (`sub` on HTTP, the connection id on WebSocket), integration
    error and latency; never a header, query string or other claim."""

    def broken(self, edit) -> dict:
        t = copy.deepcopy(TEMPLATE)
        edit(t)
        return t

    def fields(self, stage: str) -> dict:
        import json
        return json.loads(TEMPLATE["Resources"][stage]["Properties"]["AccessLogSettings"]["Format"])

    def test_both_stages_log_json_lines_with_the_caller_to_their_own_group_with_retention(self):
        http, ws = self.fields("HttpApiStage"), self.fields("WebSocketStage")
        self.assertEqual(http["sub"], "$context.authorizer.claims.sub")
        self.assertEqual(ws["connectionId"], "$context.connectionId")
        for f in (http, ws):
            for key in ("requestId", "ip", "requestTime", "routeKey", "status", "integrationError", "integrationLatency"):
                self.assertIn(key, f)
        for stage, group in (("HttpApiStage", "HttpApiAccessLogGroup"), ("WebSocketStage", "WebSocketAccessLogGroup")):
            dest = TEMPLATE["Resources"][stage]["Properties"]["AccessLogSettings"]["DestinationArn"]
            self.assertEqual(dest, {"Fn::GetAtt": [group, "Arn"]})
            self.assertEqual(TEMPLATE["Resources"][group]["Properties"]["RetentionInDays"], {"Ref": "LogRetentionDays"})

    def test_a_field_that_could_carry_a_token_is_named(self):
        for var in ("$request.header.Authorization", "$context.requestOverride.querystring.token",
                    "$context.authorizer.claims.email", "$input.body"):
            with self.subTest(var=var):
                def edit(t, var=var):
                    import json
                    s = t["Resources"]["WebSocketStage"]["Properties"]["AccessLogSettings"]
                    f = json.loads(s["Format"])
                    f["extra"] = var
                    s["Format"] = json.dumps(f)
                found = inv.every_api_stage_writes_json_access_logs_to_a_group_with_retention(self.broken(edit))
                self.assertEqual(found, [f"WebSocketStage: access log field 'extra' logs {var!r}, which may carry a secret"])

    def test_a_missing_caller_a_group_without_retention_and_a_non_json_format_are_named(self):
        def no_sub(t):
            s = t["Resources"]["HttpApiStage"]["Properties"]["AccessLogSettings"]
            s["Format"] = s["Format"].replace("$context.authorizer.claims.sub", "-")
        found = inv.every_api_stage_writes_json_access_logs_to_a_group_with_retention(self.broken(no_sub))
        self.assertEqual(found, ["HttpApiStage: access log field 'sub' is '-', not '$context.authorizer.claims.sub'"])
        found = inv.every_api_stage_writes_json_access_logs_to_a_group_with_retention(self.broken(
            lambda t: t["Resources"]["WebSocketAccessLogGroup"]["Properties"].pop("RetentionInDays")))
        self.assertEqual(found, ["WebSocketStage: its access log group WebSocketAccessLogGroup has no RetentionInDays (logs kept forever)"])
        found = inv.every_api_stage_writes_json_access_logs_to_a_group_with_retention(self.broken(
            lambda t: t["Resources"]["HttpApiStage"]["Properties"]["AccessLogSettings"].update(Format="$context.requestId")))
        self.assertEqual(found, ["HttpApiStage: access log Format is not a JSON object"])

    def test_the_websocket_stage_waits_for_the_account_log_role_when_the_stack_sets_it(self):
        tags = TEMPLATE["Resources"]["WebSocketStage"]["Properties"]["Tags"]
        self.assertEqual(tags["Fn::If"][0], "CreateApiGatewayLogRole")
        self.assertEqual(list(tags["Fn::If"][1].values()), [{"Ref": "ApiGatewayAccount"}])
        self.assertEqual(TEMPLATE["Resources"]["ApiGatewayAccount"]["Condition"], "CreateApiGatewayLogRole")


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

    def test_the_schedule_dead_letter_queue_needs_its_new_letters_alarm(self):
        t = self.broken(lambda t: t["Resources"].pop("SweeperScheduleDlqNewLettersAlarm"))
        self.assertEqual(
            inv.every_dead_letter_queue_alarms_on_new_letters(t),
            ["SweeperScheduleDeadLetterQueue: no alarm on new letters (an increase of "
             "ApproximateNumberOfMessagesVisible + NotVisible)"],
        )


class AlarmsArriveAndFireOnEveryNewLetter(unittest.TestCase):
    """Issue 18: the alarm topic's key lets CloudWatch publish; each DLQ's alarm fires on an
    increase of the letters it holds. Each way of breaking them is named."""

    def broken(self, edit) -> dict:
        t = copy.deepcopy(TEMPLATE)
        edit(t)
        return t

    check_topic = staticmethod(inv.every_topic_an_alarm_notifies_is_unencrypted_or_uses_a_key_cloudwatch_may_use)
    check_dlqs = staticmethod(inv.every_dead_letter_queue_alarms_on_new_letters)

    def test_the_aws_managed_sns_key_is_named(self):
        t = self.broken(lambda t: t["Resources"]["AlarmTopic"]["Properties"].update(KmsMasterKeyId="alias/aws/sns"))
        found = self.check_topic(t)
        self.assertEqual(len(found), 1, found)
        self.assertTrue(found[0].startswith("AlarmTopic: alarms notify it, but it is encrypted with alias/aws/sns"), found)

    def test_a_key_policy_without_cloudwatch_is_named(self):
        def edit(t):
            statements = t["Resources"]["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
            statements[:] = [st for st in statements if "Service" not in (st.get("Principal") or {})]

        self.assertEqual(
            self.check_topic(self.broken(edit)),
            ["AlarmTopic: alarms notify it, but its key AlarmTopicKey cannot be used by CloudWatch: its key policy "
             "does not allow cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*"],
        )

    def test_a_key_policy_granting_only_decrypt_is_named(self):
        def edit(t):
            for st in t["Resources"]["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]:
                if "Service" in (st.get("Principal") or {}):
                    st["Action"] = ["kms:Decrypt"]

        found = self.check_topic(self.broken(edit))
        self.assertEqual(len(found), 1, found)
        self.assertIn("does not allow cloudwatch.amazonaws.com kms:GenerateDataKey*", found[0])

    def test_a_disabled_key_is_named(self):
        t = self.broken(lambda t: t["Resources"]["AlarmTopicKey"]["Properties"].update(Enabled=False))
        self.assertEqual(
            self.check_topic(t),
            ["AlarmTopic: alarms notify it, but its key AlarmTopicKey cannot be used by CloudWatch: the key is disabled"],
        )

    def test_an_unencrypted_topic_or_the_key_named_by_its_alias_pass(self):
        self.assertEqual(self.check_topic(self.broken(lambda t: t["Resources"]["AlarmTopic"]["Properties"].pop("KmsMasterKeyId"))), [])
        by_alias = self.broken(
            lambda t: t["Resources"]["AlarmTopic"]["Properties"].update(KmsMasterKeyId={"Ref": "AlarmTopicKeyAlias"})
        )
        self.assertEqual(self.check_topic(by_alias), [])

    def test_every_dead_letter_queue_has_exactly_one_new_letters_alarm(self):
        self.assertEqual(
            sorted(dlq_alarms(TEMPLATE).values()),
            sorted(["ThumbnailsDeadLetterQueue", "VariantsDeadLetterQueue", "EventsDeadLetterQueue",
                    "NotifyFailuresQueue", "SweeperScheduleDeadLetterQueue"]),
        )

    def test_each_dlq_alarm_turned_back_into_a_depth_alarm_is_named(self):
        for alarm, queue in dlq_alarms(TEMPLATE).items():
            with self.subTest(alarm=alarm):
                found = self.check_dlqs(self.broken(lambda t: as_depth_alarm(t["Resources"][alarm], queue)))
                self.assertEqual(len(found), 1, found)
                self.assertTrue(found[0].startswith(f"{queue}: its alarm {alarm} is not a new-letters (increase) alarm"), found)
                self.assertIn("depth alarm stays in ALARM", found[0])

    def test_each_dlq_alarm_without_its_difference_is_named(self):
        for alarm, queue in dlq_alarms(TEMPLATE).items():
            with self.subTest(alarm=alarm):
                found = self.check_dlqs(
                    self.broken(lambda t: returned_expression(t["Resources"][alarm]).update(Expression="visible + hidden"))
                )
                self.assertEqual(found, [f"{queue}: its alarm {alarm} is not a new-letters (increase) alarm: returns "
                                         "'visible + hidden', not a DIFF(...) or RATE(...) of the letters held"])

    def test_each_dlq_alarm_counting_visible_letters_only_is_named(self):
        # The sweeper's peek hides letters: counting only the visible ones, a peek looks like a
        # decrease and the end of the peek like new letters.
        for alarm, queue in dlq_alarms(TEMPLATE).items():
            with self.subTest(alarm=alarm):
                found = self.check_dlqs(
                    self.broken(lambda t: returned_expression(t["Resources"][alarm]).update(Expression="DIFF(FILL(visible, 0))"))
                )
                self.assertEqual(len(found), 1, found)
                self.assertIn(f"{alarm} is not a new-letters (increase) alarm: its expression does not read "
                              f"ApproximateNumberOfMessagesNotVisible of {queue}", found[0])

    def test_a_dlq_alarm_on_messages_sent_is_named(self):
        # NumberOfMessagesSent does not count the messages a redrive moves into a DLQ.
        def edit(t):
            alarm = t["Resources"]["ThumbnailsDlqNewLettersAlarm"]
            as_depth_alarm(alarm, "ThumbnailsDeadLetterQueue")
            alarm["Properties"].update(MetricName="NumberOfMessagesSent", Statistic="Sum")

        found = self.check_dlqs(self.broken(edit))
        self.assertEqual(len(found), 1, found)
        self.assertIn("ThumbnailsDeadLetterQueue: its alarm ThumbnailsDlqNewLettersAlarm is not a new-letters", found[0])

    def test_a_dlq_alarm_reading_another_queue_is_named(self):
        def edit(t):
            for m in t["Resources"]["VariantsDlqNewLettersAlarm"]["Properties"]["Metrics"]:
                if m["Id"] == "hidden":
                    m["MetricStat"]["Metric"]["Dimensions"][0]["Value"] = {"Fn::GetAtt": ["ThumbnailsDeadLetterQueue", "QueueName"]}

        found = self.check_dlqs(self.broken(edit))
        self.assertTrue(any("VariantsDlqNewLettersAlarm is not a new-letters (increase) alarm: its expression does not "
                            "read ApproximateNumberOfMessagesNotVisible of VariantsDeadLetterQueue" in f for f in found), found)
        self.assertTrue(any(f.startswith("ThumbnailsDeadLetterQueue: its alarm VariantsDlqNewLettersAlarm") for f in found), found)

    def test_a_dlq_alarm_that_stays_in_alarm_on_missing_data_or_needs_two_letters_is_named(self):
        t = self.broken(lambda t: t["Resources"]["EventsDlqNewLettersAlarm"]["Properties"].update(TreatMissingData="breaching"))
        self.assertEqual(
            self.check_dlqs(t),
            ["EventsDeadLetterQueue: its alarm EventsDlqNewLettersAlarm is not a new-letters (increase) alarm: "
             "TreatMissingData 'breaching', not notBreaching (a quiet queue must return to OK)"],
        )
        t = self.broken(lambda t: t["Resources"]["NotifyFailuresNewLettersAlarm"]["Properties"].update(Threshold=1.5))
        found = self.check_dlqs(t)
        self.assertEqual(len(found), 1, found)
        self.assertIn("GreaterThanOrEqualToThreshold 1.5 does not fire on an increase of one letter", found[0])
        # A letter arriving at mid-minute shows as two averaged increases of 0.5: "> 0.5" misses it.
        t = self.broken(lambda t: t["Resources"]["VariantsDlqNewLettersAlarm"]["Properties"].update(
            ComparisonOperator="GreaterThanThreshold"))
        found = self.check_dlqs(t)
        self.assertEqual(len(found), 1, found)
        self.assertIn("GreaterThanThreshold 0.5 does not fire on an increase of one letter", found[0])


class QueuesKeepJobsAndOriginalsNeverExpire(unittest.TestCase):
    """Issue 18: processing queues keep 14 days, their DLQs no less; no lifecycle rule expires
    anything under originals/ (the pinned original)."""

    def broken(self, edit) -> dict:
        t = copy.deepcopy(TEMPLATE)
        edit(t)
        return t

    check_retention = staticmethod(inv.processing_queues_retain_messages_fourteen_days)
    check_dlq_retention = staticmethod(inv.dlq_retention_exceeds_its_source_queue_retention_or_both_are_the_maximum)
    check_lifecycle = staticmethod(inv.no_lifecycle_rule_expires_anything_under_originals)

    def test_a_processing_queue_on_the_default_retention_is_named(self):
        t = self.broken(lambda t: t["Resources"]["VariantsQueue"]["Properties"].pop("MessageRetentionPeriod"))
        self.assertEqual(
            self.check_retention(t),
            ["VariantsQueue (consumed by VariantFunction): MessageRetentionPeriod 345600 s, expected 1209600 s (14 days)"],
        )

    def test_a_dlq_keeping_letters_less_long_than_its_source_is_named(self):
        t = self.broken(lambda t: t["Resources"]["ThumbnailsDeadLetterQueue"]["Properties"].update(MessageRetentionPeriod=345600))
        found = self.check_dlq_retention(t)
        self.assertEqual(len(found), 1, found)
        self.assertTrue(found[0].startswith("ThumbnailsDeadLetterQueue: retention 345600 s is not longer than its "
                                            "source ThumbnailsQueue's 1209600 s"), found)

    def test_equal_retention_passes_only_at_the_maximum(self):
        def both(seconds):
            def edit(t):
                for q in ("VariantsQueue", "VariantsDeadLetterQueue"):
                    t["Resources"][q]["Properties"]["MessageRetentionPeriod"] = seconds
            return edit

        self.assertEqual(self.check_dlq_retention(self.broken(both(1209600))), [])
        found = self.check_dlq_retention(self.broken(both(604800)))
        self.assertEqual(len(found), 1, found)
        self.assertIn("VariantsDeadLetterQueue: retention 604800 s is not longer than its source VariantsQueue's 604800 s", found[0])

    def test_a_derivative_rule_widened_to_the_whole_bucket_is_named(self):
        t = self.broken(lambda t: lifecycle_rule(t, "expire-replaced-variants").pop("Prefix"))
        self.assertEqual(
            self.check_lifecycle(t),
            ["ImagesBucket: lifecycle rule 'expire-replaced-variants' (NoncurrentVersionExpiration) applies to "
             "originals/ (the whole bucket): it would expire pinned originals"],
        )

    def test_any_expiring_rule_reaching_originals_is_named(self):
        cases = {
            "a prefix above originals/": {"Id": "x", "Status": "Enabled", "Prefix": "orig", "NoncurrentVersionExpiration": {"NoncurrentDays": 30}},
            "a prefix inside originals/": {"Id": "x", "Status": "Enabled", "Prefix": "originals/abc/", "NoncurrentVersionExpirationInDays": 7},
            "a tag-only filter": {"Id": "x", "Status": "Enabled", "TagFilters": [{"Key": "k", "Value": "v"}], "ExpirationInDays": 90},
            "an expiry of current objects": {"Id": "x", "Status": "Enabled", "Prefix": "originals/", "ExpirationInDays": 365},
        }
        for case, rule in cases.items():
            with self.subTest(case=case):
                t = self.broken(lambda t: t["Resources"]["ImagesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"].append(rule))
                found = self.check_lifecycle(t)
                self.assertEqual(len(found), 1, found)
                self.assertTrue(found[0].startswith("ImagesBucket: lifecycle rule 'x' ("), found)
                self.assertIn("applies to originals/", found[0])

    def test_rules_that_expire_nothing_under_originals_pass(self):
        harmless = [
            {"Id": "a", "Status": "Disabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
            {"Id": "b", "Status": "Enabled", "Prefix": "originals/", "ExpiredObjectDeleteMarker": True},
            {"Id": "c", "Status": "Enabled", "Prefix": "thumbnails/", "ExpirationInDays": 30},
        ]
        t = self.broken(lambda t: t["Resources"]["ImagesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"].extend(harmless))
        self.assertEqual(self.check_lifecycle(t), [])

    def test_replaced_derivative_versions_still_expire(self):
        for rule_id, prefix in (("expire-replaced-thumbnails", "thumbnails/"), ("expire-replaced-variants", "variants/")):
            rule = lifecycle_rule(TEMPLATE, rule_id)
            self.assertEqual((rule["Status"], rule["Prefix"], rule["NoncurrentVersionExpiration"]["NoncurrentDays"]),
                             ("Enabled", prefix, 1))


class TheSweeperMayDoItsNewDuties(unittest.TestCase):
    """Issue 18: the sweeper HEADs originals before expiring an upload and re-enqueues stale rows;
    it keeps the DLQs' letters of failed work and deletes only letters whose work completed after
    all (found by the simulator: a retry, or a process that died after completing, leaves them)."""

    sweeper = TEMPLATE["Resources"]["SweeperFunction"]["Properties"]

    def allowed(self, action: str) -> list:
        return [
            r for st in self.sweeper["Policies"][0]["Statement"]
            if st["Effect"] == "Allow" and action in inv.as_list(st["Action"]) for r in inv.as_list(st["Resource"])
        ]

    def test_its_queue_variables_are_named_and_valued_as_the_images_functions(self):
        images = TEMPLATE["Resources"]["ImagesFunction"]["Properties"]["Environment"]["Variables"]
        env = self.sweeper["Environment"]["Variables"]
        for var in ("THUMBNAILS_QUEUE_URL", "VARIANTS_QUEUE_URL"):
            self.assertEqual(env.get(var), images[var], var)
        self.assertEqual(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["BUCKET"], {"Ref": "ImagesBucket"})

    def test_it_may_head_originals_only_and_tell_missing_from_denied(self):
        self.assertEqual(self.allowed("s3:GetObject"), [{"Fn::Sub": "${ImagesBucket.Arn}/originals/*"}])
        self.assertEqual(self.allowed("s3:ListBucket"), [{"Fn::GetAtt": ["ImagesBucket", "Arn"]}])
        self.assertEqual(self.allowed("s3:PutObject") + self.allowed("s3:DeleteObject") + self.allowed("s3:DeleteObjectVersion"), [])

    def test_it_may_enqueue_to_the_processing_queues_and_read_the_dlqs_but_no_processing_queue(self):
        queues = [{"Fn::GetAtt": ["ThumbnailsQueue", "Arn"]}, {"Fn::GetAtt": ["VariantsQueue", "Arn"]}]
        dlqs = [{"Fn::GetAtt": ["ThumbnailsDeadLetterQueue", "Arn"]}, {"Fn::GetAtt": ["VariantsDeadLetterQueue", "Arn"]}]
        self.assertEqual(self.allowed("sqs:SendMessage"), queues)
        self.assertEqual(self.allowed("sqs:ReceiveMessage"), dlqs)
        self.assertEqual(self.allowed("sqs:ChangeMessageVisibility"), dlqs)
        self.assertEqual(self.allowed("sqs:DeleteMessage"), dlqs)
        self.assertEqual(self.allowed("sqs:GetQueueAttributes"), dlqs)

    def test_a_queue_in_its_environment_without_a_grant_is_named(self):
        t = copy.deepcopy(TEMPLATE)
        drop_statement(t, "SweeperFunction", "sqs:SendMessage")
        self.assertEqual(
            inv.every_queue_a_function_is_given_is_in_its_policy(t),
            ["SweeperFunction: its environment names ThumbnailsQueue (THUMBNAILS_QUEUE_URL), but its policy grants no "
             "sqs: action on it",
             "SweeperFunction: its environment names VariantsQueue (VARIANTS_QUEUE_URL), but its policy grants no "
             "sqs: action on it"],
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


class CapacityFollowsTheMeasuredTimes(unittest.TestCase):
    """The processors' concurrency defaults are held to the scale model's measured times."""

    FIGURE = (
        "| Lambda time per image (median of 3 per size class) | 1280 px: thumbnail {t} ms, variant {v} ms; "
        "1920 px: thumbnail {t} ms, variant {v} ms; 2560 px: thumbnail {t} ms, variant {v} ms; "
        "4000 px: thumbnail 90 ms, variant 900 ms; upload (presign) 1 ms |"
    )

    def check(self, t_ms: int, v_ms: int) -> list[str]:
        text = self.FIGURE.format(t=t_ms, v=v_ms)
        return inv.processor_concurrency_defaults_cover_the_design_point(TEMPLATE, text)

    def test_the_formula(self):
        # 100/s x 0.2 s / (1024/1769 of a vCPU) x 1.5 = 51.8 -> 52
        self.assertEqual(inv.needed_concurrency(200, 1024), 52)
        self.assertEqual(inv.needed_concurrency(200, 3538), 30, "a whole vCPU at most")

    def test_a_slower_variant_stage_breaks_the_defaults(self):
        self.assertEqual(self.check(26, 150), [])
        broken = self.check(26, 400)
        self.assertEqual(len(broken), 1, broken)
        self.assertIn("VariantFunction", broken[0])

    def test_without_the_figure_the_check_fails(self):
        self.assertTrue(inv.processor_concurrency_defaults_cover_the_design_point(TEMPLATE, "no figures"))


class TheStatusIndexIsShardedAndItsPredecessorDroppable(unittest.TestCase):
    def gsis(self) -> tuple[dict, list]:
        t = copy.deepcopy(TEMPLATE)
        return t, t["Resources"]["ImagesTable"]["Properties"]["GlobalSecondaryIndexes"]

    def test_the_template_as_it_is_passes(self):
        self.assertEqual(inv.status_indexes_are_sharded_and_any_index_on_the_bare_status_can_be_dropped(TEMPLATE), [])

    def test_a_template_without_by_status_v2_is_named(self):
        t, gsis = self.gsis()
        gsis[:] = [g for g in gsis if g.get("IndexName") != "by_status_v2"]
        found = inv.status_indexes_are_sharded_and_any_index_on_the_bare_status_can_be_dropped(t)
        self.assertTrue(any("no by_status_v2" in p for p in found), found)

    def test_a_sharded_index_projecting_attributes_is_named(self):
        t, gsis = self.gsis()
        next(g for g in gsis if g.get("IndexName") == "by_status_v2")["Projection"] = {"ProjectionType": "ALL"}
        found = inv.status_indexes_are_sharded_and_any_index_on_the_bare_status_can_be_dropped(t)
        self.assertTrue(any("project KEYS_ONLY" in p for p in found), found)

    def test_a_sharded_index_sorted_by_a_key_every_write_changes_is_named(self):
        t, gsis = self.gsis()
        gsi = next(g for g in gsis if g.get("IndexName") == "by_status_v2")
        gsi["KeySchema"] = [{"AttributeName": "status_key", "KeyType": "HASH"}, {"AttributeName": "updated_at", "KeyType": "RANGE"}]
        found = inv.status_indexes_are_sharded_and_any_index_on_the_bare_status_can_be_dropped(t)
        self.assertTrue(any("sorted by status_since" in p for p in found), found)
