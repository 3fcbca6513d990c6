"""GPU facts and telemetry from NVML (pynvml, from nvidia-ml-py). No NVML means CPU mode.

Facts (name, UUID, memory, driver and CUDA versions) go into the provider's on-chain metadata;
telemetry (utilization, memory in use, temperature, power) feeds the idle check and the metrics.
The idle check looks at other processes' use of the GPU: the daemon claims only when the owner
is not using the card for something else.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuFacts:
    index: int
    name: str
    uuid: str
    memory_bytes: int
    driver_version: str
    cuda_version: str


@dataclass(frozen=True)
class GpuSample:
    index: int
    utilization_pct: int
    memory_used_bytes: int
    memory_total_bytes: int
    temperature_c: int
    power_w: float
    other_processes_memory_bytes: int


class Gpus:
    """The machine's NVIDIA GPUs through NVML; ``available`` is False (CPU mode) where NVML is absent."""

    def __init__(self) -> None:
        self._nvml: Any = None
        try:
            import pynvml  # type: ignore[import-untyped]

            pynvml.nvmlInit()
            self._nvml = pynvml
        except Exception as error:  # no driver, no library, no device: all mean CPU mode
            log.info("NVML unavailable (%s): CPU mode", error)

    @property
    def available(self) -> bool:
        return self._nvml is not None and self.count() > 0

    def count(self) -> int:
        return int(self._nvml.nvmlDeviceGetCount()) if self._nvml is not None else 0

    def facts(self) -> list[GpuFacts]:
        if self._nvml is None:
            return []
        nvml = self._nvml
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = nvml.nvmlSystemGetCudaDriverVersion_v2()
        cuda_version = f"{cuda // 1000}.{cuda % 1000 // 10}"
        result = []
        for index in range(self.count()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            result.append(GpuFacts(index, _text(nvml.nvmlDeviceGetName(handle)), _text(nvml.nvmlDeviceGetUUID(handle)),
                                   int(nvml.nvmlDeviceGetMemoryInfo(handle).total), driver, cuda_version))
        return result

    def samples(self) -> list[GpuSample]:
        if self._nvml is None:
            return []
        nvml = self._nvml
        me = os.getpid()
        result = []
        for index in range(self.count()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
                others = sum(int(p.usedGpuMemory or 0) for p in processes if p.pid != me)
            except nvml.NVMLError:
                others = 0
            result.append(GpuSample(
                index, int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu), int(memory.used), int(memory.total),
                int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
                nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0, others))
        return result

    def idle(self, threshold_pct: int) -> bool:
        """False when a GPU runs above ``threshold_pct`` while another process holds memory on it.

        Our own work shows in utilization too; only a card that someone else is using counts as busy.
        """
        return not any(sample.utilization_pct > threshold_pct and sample.other_processes_memory_bytes > 0
                       for sample in self.samples())

    def describe(self) -> dict[str, Any]:
        """GPU facts for the provider's metadata document (empty list: CPU mode)."""
        return {"gpus": [asdict(fact) for fact in self.facts()]}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
