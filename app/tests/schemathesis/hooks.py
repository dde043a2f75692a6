"""schemathesis hooks for device-api (loaded by app/tests/schemathesis.rs).

Two rules of a measurement cannot be said in JSON Schema, so a schema-valid body can
still be refused (422) for them, and schemathesis would call that a schema-valid request
rejected: `time` must lie within --max-measurement-age before now and --max-clock-skew
after it, and `charge_now` must not exceed `charge_full`. Both are in the document's
descriptions. Every body schemathesis generates as valid is made to keep them too; bodies
generated to be invalid are left alone, so refusals are still checked.
"""

from datetime import datetime, timezone

import schemathesis
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.modes import GenerationMode

MEASUREMENT_PATHS = {"/measurement", "/measurements"}


def _body_is_valid(case):
    meta = case.meta
    if meta is None:  # an explicit example from the document: valid by construction
        return True
    body = meta.components.get(ParameterLocation.BODY)
    mode = body.mode if body is not None else meta.generation.mode
    return mode == GenerationMode.POSITIVE


def _keep_unwritten_rules(measurement):
    if not isinstance(measurement, dict):
        return
    if "time" in measurement:
        measurement["time"] = datetime.now(timezone.utc).isoformat()
    now, full = measurement.get("charge_now"), measurement.get("charge_full")
    if isinstance(now, (int, float)) and isinstance(full, (int, float)) and now > full:
        measurement["charge_now"] = full


@schemathesis.hook
def map_case(context, case):
    if case.operation.path in MEASUREMENT_PATHS and _body_is_valid(case):
        body = case.body
        for measurement in body if isinstance(body, list) else [body]:
            _keep_unwritten_rules(measurement)
    return case
