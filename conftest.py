"""What ``pytest`` means in this repository, as the README types it (``pytest --nbval chapters/`` too).

- **The fast profile by default.** Executing every chapter in the full profile takes about an hour
  on 2 cores, so under pytest ``VQVAE_FAST`` defaults to 1. The full re-check of the stored outputs
  is ``VQVAE_FAST=0 pytest -n 0 -m ""``: the environment always wins.
- **Two workers, one thread each.** ``-n 2`` (pyproject.toml) runs two notebooks at once in
  pytest-xdist's workers. Each worker sets ``OMP_NUM_THREADS=1`` for itself and the kernels it starts:
  two workers of two OpenMP threads on 2 cores would make each wait for a descheduled partner thread.
- **No progress bars in the kernels that nbval starts.** nbval reads a kernel's output messages
  only after the cell has finished, so during a long training cell they queue in ZeroMQ, whose
  queues hold about 1,000 messages and then drop new ones, the cell's final "idle" included; nbval
  then waits for it in vain ("Timeout of ... seconds exceeded waiting for output"). A tqdm widget
  bar sends a message several times a second: Chapter 01's training cell sent 229 in the fast
  profile; on a busy machine the full profile runs ten times longer or more, and it lost Chapters 01,
  04 and 05, most likely this way (after the reply, no message came for 120 s). ``TQDM_DISABLE=1`` is tqdm's own switch, but ``tqdm.notebook`` overrides
  it, so ``vqvae_lib.train.fit`` passes it to the bar by hand; that cell now sends 2 messages (its
  printed lines) and the idle status.
- **Threads that yield on a busy machine.** PyTorch's CPU kernels run on GNU OpenMP threads, which
  spin while they wait for each other. When another CPU-bound process shares the 2 cores, a spinning
  thread burns the time slice its partner needs: a chapter's training ran 19 times slower beside one
  busy-loop process (1.06 against 19.8 steps/s). ``GOMP_SPINCOUNT=20000`` makes a waiting thread
  sleep sooner: 4.95 steps/s beside the busy loop, and no loss on a quiet machine (20.2 steps/s).
  ``benchmarks/omp_contention.py`` measures it. Results do not change: only how threads wait.

- **Chapter 07 after Chapter 10, its solutions last.** A notebook loads the fast models that earlier
  chapters cached, and trains any it does not find (the cache writes atomically, so two workers may both
  train one). Chapter 07 loads the models of Chapters 01, 02, 04 and 06 in its first cells and the
  learning-rate page's runs after them; in file order it can start while Chapter 06 is still training its
  prior on the other worker, and train that prior again (in one timing its loading cell took 13 s instead
  of 3, about the time of that prior). ``pytest_collection_modifyitems`` moves it after Chapter 10
  (``RUN_LATE``), which, like Chapters 08 and 09, loads nothing from another chapter. Solutions 07 and 7a
  load Chapter 07's runs, so they move to the end, after Solutions 10, to start well after Chapter 07 has
  finished.

- **A longer wait for a cell's last messages.** After a cell's reply, nbval waits a hard-coded 5 s
  for each further message up to the kernel's "idle" (nbval issues #136 and #231; the option for it
  was never merged); on a busy machine a message can come later than that.
  ``pytest_collection_modifyitems`` below sets nbval's per-cell ``output_timeout`` to 120 s. It costs
  nothing when messages are prompt; ``tests/nbval_late_idle.ipynb`` delays a cell's "idle" by 8 s and
  fails without it.

The kernels inherit this process's environment, so setting it here, before collection, reaches them
(OpenMP reads it when a kernel first imports torch).
"""

import os

import pytest

os.environ.setdefault("VQVAE_FAST", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("GOMP_SPINCOUNT", "20000")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one of pytest-xdist's parallel workers (`-n 2` in pyproject.toml)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # a thread per worker: two 2-thread workers on 2 cores stall

NBVAL_OUTPUT_WAIT_S = 120


RUN_LATE = {  # notebook: the one it is moved after, in this order
    "chapters/07_bits_per_dim.ipynb": "chapters/10_going_further.ipynb",
    "solutions/07_bits_per_dim.ipynb": "solutions/10_going_further.ipynb",
    "solutions/07_learning_rates.ipynb": "solutions/07_bits_per_dim.ipynb",
}
SLOW_NOTEBOOKS = ("nbval_late_idle",)  # an 8 s delay by design; in the `slow` group (pyproject.toml)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's IPyNbCell
            item.output_timeout = NBVAL_OUTPUT_WAIT_S
            if item.path.stem in SLOW_NOTEBOOKS:
                item.add_marker(pytest.mark.slow)
    files = list(dict.fromkeys(item.nodeid.split("::")[0] for item in items))  # in collection order
    for late, after in RUN_LATE.items():
        if late in files and after in files:
            files.remove(late)
            files.insert(files.index(after) + 1, late)
    position = {f: i for i, f in enumerate(files)}
    items.sort(key=lambda item: position[item.nodeid.split("::")[0]])  # stable: cells keep their order
