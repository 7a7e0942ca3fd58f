"""Offline checks of infra/local's emulator shims (infra/local/emulator.py) against the pinned
MiniStack in the venv: the difference each shim papers over still exists (else drop the shim),
and the shim stores what AWS would.

    .venv/bin/python -m unittest discover -s infra/tests -v
"""

from __future__ import annotations

import copy
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))
sys.path.insert(0, str(ROOT / "infra" / "local"))

import release  # noqa: E402

TEMPLATE = release.load_template()

try:
    from ministack.services.cloudformation import provisioners
except ImportError:  # pragma: no cover - the venv always has it (infra/local/requirements.txt)
    provisioners = None


def resolved_dlq_alarm_props() -> dict:
    """A DLQ alarm's properties as CloudFormation hands them to a provisioner (intrinsics resolved)."""
    props = copy.deepcopy(TEMPLATE["Resources"]["ThumbnailsDlqNewLettersAlarm"]["Properties"])
    for m in props["Metrics"]:
        for d in (m.get("MetricStat") or {}).get("Metric", {}).get("Dimensions", []):
            d["Value"] = "safelight-ThumbnailsDeadLetterQueue-ABC"
    props["AlarmActions"] = props["OKActions"] = ["arn:aws:sns:us-east-1:000000000000:safelight-AlarmTopic-ABC"]
    return props


@unittest.skipIf(provisioners is None, "MiniStack is not installed (run infra/local/stack.sh setup)")
class TheMetricMathAlarmShim(unittest.TestCase):
    def setUp(self):
        self.original = provisioners._cw_metric_alarm_record
        self.addCleanup(setattr, provisioners, "_cw_metric_alarm_record", self.original)

    def test_the_pinned_emulator_still_refuses_metric_math_alarms(self):
        # When this fails, MiniStack deploys metric-math alarms itself: drop the shim.
        with self.assertRaisesRegex(ValueError, r"Properties.Metrics \(metric math\) is not supported"):
            self.original("safelight-ThumbnailsDlqNewLettersAlarm-X", resolved_dlq_alarm_props())

    def test_the_shim_stores_the_alarm_as_put_metric_alarm_would(self):
        import emulator

        emulator.accept_metric_math_alarms()
        emulator.accept_metric_math_alarms()  # idempotent
        props = resolved_dlq_alarm_props()
        alarm = provisioners._cw_metric_alarm_record("safelight-ThumbnailsDlqNewLettersAlarm-X", props)
        self.assertEqual(alarm["Metrics"], props["Metrics"])
        self.assertNotIn("MetricName", alarm)
        self.assertNotIn("Namespace", alarm)
        self.assertEqual(
            (alarm["Threshold"], alarm["ComparisonOperator"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"],
             alarm["TreatMissingData"], alarm["AlarmActions"], alarm["OKActions"]),
            (0.5, "GreaterThanOrEqualToThreshold", 3, 1, "notBreaching", props["AlarmActions"], props["OKActions"]),
        )

    def test_the_shim_leaves_single_metric_alarms_to_the_emulator(self):
        import emulator

        emulator.accept_metric_math_alarms()
        props = copy.deepcopy(TEMPLATE["Resources"]["UploadErrorsAlarm"]["Properties"])
        props["Dimensions"][0]["Value"] = "safelight-UploadFunction-ABC"
        props["AlarmActions"] = props["OKActions"] = ["arn:aws:sns:us-east-1:000000000000:t"]
        alarm = provisioners._cw_metric_alarm_record("safelight-UploadErrorsAlarm-X", props)
        self.assertEqual((alarm["MetricName"], alarm["Namespace"]), ("Errors", "AWS/Lambda"))
        self.assertNotIn("Metrics", alarm)


if __name__ == "__main__":
    unittest.main()
