"""One function run in a second process while the caller works.

A laptop has at least two cores, and the trainer's rollout keeps one of them busy (the env
steps a few hundred patients on one thread: ``sim.auto_threads``). ``biofluxopt train`` uses
the other one for the baselines, which do not depend on the policy: the best-constant search
and the open-loop oracle run in a :class:`BackgroundJob` while PPO trains.

The child is *spawned* (a fresh interpreter, as on macOS and Windows), not forked: torch's
thread pools are not fork-safe. Consequences for callers: the function must be importable at
module level, its arguments and result picklable, and a script that starts a job must guard
its entry point with ``if __name__ == "__main__":`` (the standard ``multiprocessing`` rule).
The child runs the same code with the same seeds and thread counts as a call in the parent
would, so its result is the same, bit for bit.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import traceback
from collections.abc import Callable

from ._errors import BioFluxOptError

#: Seconds between checks that the child is still alive while waiting for its result.
_POLL_S = 0.5


def _child(channel, fn: Callable, args: tuple) -> None:
    """Entry point of the spawned process: run ``fn(*args, progress=...)``, send the result."""

    def progress(*payload) -> None:
        channel.put(("progress", payload))

    try:
        result = fn(*args, progress=progress)
    except BaseException as exc:  # every failure goes back to the parent
        message = str(exc) if isinstance(exc, BioFluxOptError) else traceback.format_exc()
        channel.put(("error", (type(exc).__name__, message, isinstance(exc, BioFluxOptError))))
        return
    # pickled here, by value: multiprocessing's own pickler would send torch tensors as
    # shared-memory handles that vanish when this process exits before the parent reads them
    channel.put(("result", pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)))


class BackgroundJob:
    """``fn(*args, progress=callback)`` in a spawned process.

    Parameters
    ----------
    fn : callable
        A module-level function; ``progress`` is a callable that forwards its positional
        arguments to the parent (see :meth:`poll`).
    *args :
        Picklable arguments.

    Use it as a context manager: leaving the block with an exception (an error, Ctrl-C)
    terminates the child, so nothing keeps running after the caller gave up.

    Examples
    --------
    >>> with BackgroundJob(search, config) as job:  # doctest: +SKIP
    ...     train()
    ...     job.poll(on_progress)
    ...     found = job.result(on_progress)
    """

    def __init__(self, fn: Callable, *args):
        context = multiprocessing.get_context("spawn")
        self._channel = context.Queue()
        self._process = context.Process(
            target=_child, args=(self._channel, fn, args), daemon=True, name="biofluxopt-job"
        )
        self._process.start()
        self._done = False
        self._result = None

    def poll(self, on_progress: Callable | None = None, timeout: float = 0.0) -> bool:
        """Forward the child's progress messages to ``on_progress``; True once its result is in.

        Raises
        ------
        BioFluxOptError
            The child failed (its error message, or its traceback for a bug) or died without a
            result (e.g. killed for memory).
        """
        while not self._done:
            try:
                kind, payload = self._channel.get(block=timeout > 0, timeout=timeout or None)
            except queue.Empty:
                if not self._process.is_alive():
                    return self._drain_after_exit(on_progress)
                return False
            self._handle(kind, payload, on_progress)
        return True

    def _handle(self, kind: str, payload, on_progress) -> None:
        if kind == "progress":
            if on_progress is not None:
                on_progress(*payload)
        elif kind == "result":
            # bytes from our own child over a pipe (what Queue.get unpickles anyway), never a
            # file: nothing a user supplies reaches this
            self._result, self._done = pickle.loads(payload), True
            self._process.join()
        else:
            name, message, user_error = payload
            self._process.join()
            if user_error:
                raise BioFluxOptError(message)
            raise BioFluxOptError(f"the background job failed with {name}:\n{message}")

    def _drain_after_exit(self, on_progress) -> bool:
        """The child has exited: read what it sent before it did, or report its death."""
        while True:
            try:
                kind, payload = self._channel.get(timeout=_POLL_S)
            except queue.Empty:
                raise BioFluxOptError(
                    f"the background job stopped without a result (exit code "
                    f"{self._process.exitcode}; killed for memory?)"
                ) from None
            self._handle(kind, payload, on_progress)
            if self._done:
                return True

    def result(self, on_progress: Callable | None = None):
        """Wait for the child, forwarding its progress; returns what ``fn`` returned."""
        while not self.poll(on_progress, timeout=_POLL_S):
            pass
        return self._result

    def cancel(self) -> None:
        """Terminate the child if it still runs (idempotent)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._channel.close()

    def __enter__(self) -> BackgroundJob:
        return self

    def __exit__(self, *exc_info) -> None:
        self.cancel()
