"""What ``measure()`` does under ``--edgeperf-disable``: load the model and run one inference, in-process, untimed.

Like pytest-benchmark's ``--benchmark-disable``, a disabled run is a quick functional check of the test bodies:
the model loads in the runtime, its inputs can be made and one inference runs. No worker, guard, lock, sampler,
power meter or baseline is used, and the Result says so (status ``disabled``) with no figures at all: an
in-process inference on a cold runtime says nothing about the speed or memory a measurement would report.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import EdgeperfError
from .measure import MeasureRequest
from .result import STATUS_DISABLED, Result

DISABLED_REASON = "not measured: --edgeperf-disable (the model ran one inference in-process, untimed)"


class DisabledRunError(EdgeperfError):
    """The model could not be loaded or run once; the message is one line (the test fails with it)."""


def run_once(req: MeasureRequest, device_name: str, environment: dict[str, Any]) -> Result:
    """Load ``req``'s model through its adapter and run one inference on its first input; no figures recorded."""
    from .frameworks import ModelLoadError, get_adapter
    from .frameworks.accelerators import AcceleratorUnavailable
    from .frameworks.signature import SignatureError
    from .worker.child import plan_inputs
    from .worker.client import AcceleratorUnavailableError

    adapter = get_adapter(req.framework)
    adapter.configure(req.accelerator)
    try:
        adapter.load(req.model_file, req.threads)
    except ModelLoadError as exc:
        raise DisabledRunError(f"{req.framework} refused {req.model}: {_one_line(exc)}") from None
    except AcceleratorUnavailable as exc:
        raise AcceleratorUnavailableError(str(exc)) from None
    inputs = req.inputs or {"kind": "random", "seed": 0}
    request = {"input_shapes": req.input_shapes, "input_dtypes": req.input_dtypes, "input_values": req.input_values}
    try:
        plan, _prepare, _raw, x = plan_inputs(adapter, inputs, request, str(req.model), req.sys_path)
    except SignatureError as exc:
        raise DisabledRunError(f"{req.framework} on {req.model}: {exc}") from None
    except Exception as exc:  # a user's input function or dataset failed, as the worker would report it
        raise DisabledRunError(f"inputs for {req.model}: {_one_line(exc)}") from None
    try:
        output = adapter.run(x)
    except Exception as exc:
        raise DisabledRunError(f"{req.framework} could not run {req.model}: {_one_line(exc)}") from None
    result = Result(test_id=req.test_id, framework=req.framework, model=req.model, device=device_name,
                    status=STATUS_DISABLED, status_reason=DISABLED_REASON, quick=req.quick, threads=req.threads)
    result.environment = {**environment, "device": device_name, "runtime": req.framework,
                          "runtime_version": adapter.version(), "provider": adapter.provider(),
                          "threads": req.threads,
                          "model_file": req.model_file.name, "input_shape": list(plan.specs[0].concrete_shape()),
                          "inputs": [t.to_json() for t in plan.specs],
                          "output_shape": list(np.shape(output))}
    result.notes.append(DISABLED_REASON)
    return result


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
