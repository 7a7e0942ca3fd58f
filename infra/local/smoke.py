#!/usr/bin/env python3
"""Smoke checks of the deployed local stack's wiring (infra, not function logic).

Run by `make test` before the Rust integration suites, and useful alone after `make dev`:
    .venv/bin/python infra/local/smoke.py [NAME...]
Each check reads `.local/stack.env`; NAME runs only the checks whose name contains it; the closing
line is `smoke: N passed, N failed`. The checks live in infra/local/smoke_checks/, one module per
concern: the front door (api), the resources' wiring (resources), what the functions log (logs).
"""

from __future__ import annotations

import os
import sys
import time
import traceback

from smoke_checks import api, logs, resources


def main() -> int:
    checks = [(n, f) for m in (api, resources, logs) for n, f in vars(m).items() if n.startswith("check_") and callable(f)]
    only = sys.argv[1:]
    passed = failed = 0
    for name, fn in checks:
        if only and not any(o in name for o in only):
            continue
        started = time.monotonic()
        try:
            fn()
        except Exception as err:  # report and go on
            failed += 1
            print(f"FAIL {name[6:]}: {err}")
            if os.environ.get("SMOKE_VERBOSE"):
                traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name[6:]} ({(time.monotonic() - started) * 1000:.0f} ms)")
    print(f"smoke: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
