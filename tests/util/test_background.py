"""BackgroundJob: a function in a spawned process, its progress and result forwarded."""

from __future__ import annotations

import textwrap
import time

import pytest

from biofluxopt._util import BackgroundJob, BioFluxOptError

# spawned children import the job functions by module name: write them to a module on sys.path
JOBS = """
import os
import time

from biofluxopt._util import ConfigError


def count(n, progress):
    for i in range(n):
        progress("count", i + 1, n)
    return {"total": sum(range(n))}


def refuse(progress):
    raise ConfigError("must be positive; got -1", field="Config.x")


def bug(progress):
    return 1 / 0


def die(progress):
    os._exit(3)


def tensors(progress):
    import torch

    return {"x": torch.arange(6.0).reshape(2, 3)}


def sleep(seconds, progress):
    time.sleep(seconds)
    return "woke"
"""


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    (tmp_path / "bfo_background_jobs.py").write_text(textwrap.dedent(JOBS))
    monkeypatch.syspath_prepend(str(tmp_path))
    import bfo_background_jobs

    return bfo_background_jobs


def test_result_and_progress_come_back_in_order(jobs):
    seen = []
    with BackgroundJob(jobs.count, 5) as job:
        result = job.result(lambda *p: seen.append(p))
    assert result == {"total": 10}
    assert seen == [("count", i, 5) for i in range(1, 6)]


def test_tensors_survive_the_child_exiting_before_they_are_read(jobs):
    import torch

    with BackgroundJob(jobs.tensors) as job:
        time.sleep(2)  # the child has exited by now
        assert torch.equal(job.result()["x"], torch.arange(6.0).reshape(2, 3))


def test_poll_is_non_blocking_until_the_result_arrives(jobs):
    with BackgroundJob(jobs.sleep, 1.0) as job:
        assert job.poll() is False  # still sleeping
        assert job.result() == "woke"
        assert job.poll() is True


def test_a_user_error_comes_back_as_its_one_line_message(jobs):
    with BackgroundJob(jobs.refuse) as job, pytest.raises(BioFluxOptError) as exc:
        job.result()
    assert str(exc.value) == "Config.x: must be positive; got -1"


def test_a_bug_comes_back_with_its_traceback(jobs):
    with BackgroundJob(jobs.bug) as job, pytest.raises(BioFluxOptError) as exc:
        job.result()
    assert "ZeroDivisionError" in str(exc.value) and "return 1 / 0" in str(exc.value)


def test_a_child_that_dies_is_reported_not_waited_for(jobs):
    with BackgroundJob(jobs.die) as job, pytest.raises(BioFluxOptError, match="exit code 3"):
        job.result()


def test_leaving_the_block_early_terminates_the_child(jobs):
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt), BackgroundJob(jobs.sleep, 60) as job:
        process = job._process
        raise KeyboardInterrupt
    assert not process.is_alive()
    assert time.perf_counter() - start < 30
