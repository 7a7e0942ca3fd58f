"""The template's invariants: properties of infra/template.yaml that must hold on every change.

Each invariant is a function from the decoded template (cfn-lint's decoder: `!Ref` and friends
become `{"Ref": ...}` dicts) to a list of violations; a violation names the resource and what is
wrong. `infra/tests/test_template.py` runs every one against the real template, and against
templates broken on purpose to show each check can fail.

The invariants live by concern: `queues` (SQS, event sources, dead letters), `access` (IAM, buckets,
CORS, API authorization and throttling), `storage` (lifecycle, the status index), `capacity` (the
design point), `observability` (logs, alarms, dashboard); what they read of a template is in
`template`. This module lists them and re-exports every name, so `checks.invariants.X` is the one
path callers use.
"""

from __future__ import annotations

import re
from typing import Callable

from checks import access, capacity, observability, queues, storage
from checks.access import *  # noqa: F401,F403
from checks.capacity import *  # noqa: F401,F403
from checks.observability import *  # noqa: F401,F403
from checks.queues import *  # noqa: F401,F403
from checks.storage import *  # noqa: F401,F403
from checks.template import *  # noqa: F401,F403
from checks.template import Template

INVARIANTS: list[Callable[[Template], list[str]]] = [
    queues.visibility_is_at_least_six_times_the_consumer_timeout,
    queues.every_consumed_queue_redrives_to_a_dlq_after_three_receives,
    queues.dlq_retention_exceeds_its_source_queue_retention_or_both_are_the_maximum,
    queues.processing_queues_retain_messages_fourteen_days,
    queues.every_sqs_and_stream_source_reports_batch_item_failures,
    access.no_star_resource_except_where_aws_requires_it,
    access.every_bucket_blocks_public_access,
    access.every_bucket_policy_denies_requests_without_tls,
    storage.every_bucket_aborts_incomplete_multipart_uploads,
    storage.no_lifecycle_rule_expires_anything_under_originals,
    access.allowed_origins_are_a_parameter_without_a_star,
    access.every_api_stage_throttles_and_every_post_route_has_its_own_limit,
    access.every_admin_route_requires_the_admin_scope_and_no_other_route_does,
    observability.every_api_stage_writes_json_access_logs_to_a_group_with_retention,
    queues.every_sqs_source_caps_its_concurrency,
    capacity.processor_concurrency_defaults_cover_the_design_point,
    queues.every_stream_source_has_an_on_failure_destination,
    queues.every_event_rule_target_has_a_dead_letter_queue,
    queues.every_scheduled_or_rule_event_of_a_function_has_a_dead_letter_queue,
    observability.every_function_logs_to_its_own_log_group_with_retention,
    observability.every_function_has_error_and_throttle_alarms,
    observability.every_dead_letter_queue_alarms_on_new_letters,
    observability.every_consumed_queue_alarms_on_the_age_of_its_oldest_message,
    observability.every_breaker_stage_alarms_when_its_breaker_opens,
    observability.every_alarm_notifies_the_alarm_topic,
    observability.every_topic_an_alarm_notifies_is_unencrypted_or_uses_a_key_cloudwatch_may_use,
    queues.every_queue_is_encrypted,
    queues.every_queue_a_function_is_given_is_in_its_policy,
    observability.the_template_has_a_dashboard,
    storage.status_indexes_are_sharded_and_any_index_on_the_bare_status_can_be_dropped,
]


def title(check: Callable) -> str:
    return re.sub(r"_", " ", check.__name__)
