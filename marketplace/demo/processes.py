"""The demo's child processes: started with their logs in the run folder, watched, and all stopped.

A component that exits on its own ends the demo with its name and log (``ComponentFailedError``);
``stop_all`` sends SIGTERM to every process group it started (the daemons finish their step) and
SIGKILL to any still running after a grace period, so Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from marketplace.errors import WebiError


class ComponentFailedError(WebiError):
    def __init__(self, name: str, code: int | None, log: Path) -> None:
        self.name, self.log = name, log
        super().__init__(f"{name} stopped (exit code {code}); its log: {log}")


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Supervisor:
    folder: Path
    components: list[Component] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Component:
        log = self.folder / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        component = Component(name, process, log)
        self.components.append(component)
        return component

    def check(self) -> None:
        """Raises ``ComponentFailedError`` for the first component that is no longer running."""
        for component in self.components:
            code = component.process.poll()
            if code is not None:
                raise ComponentFailedError(component.name, code, component.log)

    def check_finished(self, components: list[Component]) -> None:
        """For one-shot commands: raises ``ComponentFailedError`` for the first that failed, forgets them all."""
        for component in components:
            self.components.remove(component)
        for component in components:
            if component.process.returncode:
                raise ComponentFailedError(component.name, component.process.returncode, component.log)

    def stop_all(self, grace: float = 15.0) -> None:
        running = [c for c in self.components if c.process.poll() is None]
        for component in running:
            _signal(component, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for component in running:
            try:
                component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(component, signal.SIGKILL)
                component.process.wait(timeout=10)
        self.components.clear()


def _signal(component: Component, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(component.process.pid, sig)
