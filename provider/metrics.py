"""Prometheus metrics of one provider daemon, in its own registry (no process-wide state)."""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from marketplace.chain.deployment import WEI
from provider.gpu import GpuSample
from provider.journal import JobRecord, Stage


class ProviderMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge("webi_provider_jobs", "Jobs in the journal, by stage", ["stage"], registry=self.registry)
        self.tasks = Counter("webi_provider_tasks", "Tasks computed", registry=self.registry)
        self.tasks_per_second = Gauge("webi_provider_tasks_per_second", "Throughput of the last job",
                                      registry=self.registry)
        self.gpu_utilization = Gauge("webi_provider_gpu_utilization_percent", "GPU utilization", ["gpu"],
                                     registry=self.registry)
        self.gpu_memory = Gauge("webi_provider_gpu_memory_used_bytes", "GPU memory in use", ["gpu"],
                                registry=self.registry)
        self.earned = Gauge("webi_provider_earned_webi", "Payments of finalized jobs, in WEBI",
                            registry=self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def tasks_done(self, count: int, seconds: float) -> None:
        self.tasks.inc(count)
        self.tasks_per_second.set(count / seconds if seconds > 0 else 0.0)

    def observe(self, records: list[JobRecord], samples: list[GpuSample]) -> None:
        stages = Tally(record.stage for record in records)
        for stage in Stage:
            self.jobs.labels(stage.value).set(stages.get(stage, 0))
        self.earned.set(sum(int(record.earned_wei) for record in records) / WEI)
        for sample in samples:
            self.gpu_utilization.labels(str(sample.index)).set(sample.utilization_pct)
            self.gpu_memory.labels(str(sample.index)).set(sample.memory_used_bytes)
