"""``task_model_class`` from many threads at once: transformers' lazy module must not be raced."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from marketplace.jobspec import TaskType
from marketplace.model_bundle import TASK_MODEL_CLASSES

# A fresh interpreter, so that no class has been resolved yet: eight threads released together by a
# barrier resolve every task's class (two threads per task) on their very first access.
_RACE = textwrap.dedent("""
    import json, threading
    from marketplace.jobspec import TaskType
    from marketplace.model_weights import task_model_class

    tasks = list(TaskType) * 2
    barrier = threading.Barrier(len(tasks))
    resolved, errors = [], []

    def resolve(task):
        barrier.wait()
        try:
            resolved.append([task.value, task_model_class(task).__name__])
        except Exception as error:
            errors.append(repr(error))

    threads = [threading.Thread(target=resolve, args=(task,)) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"resolved": sorted(resolved), "errors": errors}))
""")


def test_task_model_class_resolves_from_eight_threads_at_once() -> None:
    result = subprocess.run([sys.executable, "-c", _RACE], capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["errors"] == []
    expected = sorted([task.value, TASK_MODEL_CLASSES[task]] for task in list(TaskType) * 2)
    assert found["resolved"] == expected
    assert len(found["resolved"]) == 8
