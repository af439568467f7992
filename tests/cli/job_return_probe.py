"""A Hydra callback for the launcher tests: ``+hydra.callbacks.probe._target_=job_return_probe.RecordJobReturn``
writes what Hydra got back from each job (status, the task function's return value) to
``<run dir>/job_return.json``, in the process that ran the job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class RecordJobReturn(Callback):
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        completed = job_return.status == JobStatus.COMPLETED
        record = {
            "status": job_return.status.name,
            "return_value": job_return.return_value if completed else repr(job_return._return_value),
        }
        (Path(config.hydra.runtime.output_dir) / "job_return.json").write_text(json.dumps(record))
