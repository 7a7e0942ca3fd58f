#!/usr/bin/env python3
"""Starts the pinned emulator (MiniStack) with the few shims the template needs to deploy unchanged.

`infra/local/stack.sh start` runs this instead of the `ministack` console script (same process,
same environment, same `ministack.app.main()`). Each shim names the emulator difference it papers
over; the template itself is never rewritten for the emulator (`infra/local/drift.py` checks the
deployed template is infra/template.yaml). A shim that no longer finds what it patches fails the
start loudly, so an emulator upgrade cannot silently drop it.

EMULATOR DIFFERENCES
1. MiniStack's CloudFormation refuses an AWS::CloudWatch::Alarm defined by metric math
   (`Properties.Metrics`: "metric math is not supported"), which AWS accepts. The dead-letter
   queues' alarms are metric math (an increase of visible + not-visible letters), so without
   this shim the stack cannot deploy. The shim lets the emulator's CloudFormation store such an
   alarm as PutMetricAlarm would: its `Metrics`, threshold, periods and actions, no
   MetricName / Namespace. The emulator evaluates alarms only from metrics published with
   PutMetricData and publishes no SQS metrics, so such an alarm stays INSUFFICIENT_DATA
   locally, as the depth alarms it replaces did: alarms are configuration here, checked by
   infra/checks and by smoke.py, not behaviour.
"""

from __future__ import annotations

import functools
import sys


def accept_metric_math_alarms() -> None:
    """EMULATOR DIFFERENCE 1 (see the module docstring)."""
    from ministack.services.cloudformation import provisioners

    original = getattr(provisioners, "_cw_metric_alarm_record", None)
    if original is None:
        sys.exit(
            "infra/local/emulator.py: MiniStack has no provisioners._cw_metric_alarm_record any more; "
            "check whether it now deploys metric-math alarms and update or drop this shim"
        )
    if getattr(original, "safelight_shim", False):
        return

    @functools.wraps(original)
    def record(name, props):
        metrics = props.get("Metrics")
        if not metrics:
            return original(name, props)
        # The original builds the record from a single metric: give it a placeholder one, then
        # replace it with the alarm's metric math, as PutMetricAlarm with `Metrics` stores it.
        single = {k: v for k, v in props.items() if k != "Metrics"}
        single.update(MetricName="metric-math", Namespace="metric-math")
        alarm = original(name, single)
        for key in ("MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Period", "Dimensions", "Unit"):
            alarm.pop(key, None)
        alarm["Metrics"] = metrics
        return alarm

    record.safelight_shim = True
    provisioners._cw_metric_alarm_record = record


def main() -> None:
    accept_metric_math_alarms()
    from ministack.app import main as ministack_main

    ministack_main()


if __name__ == "__main__":
    main()
