"""Notebook mutation check, run by hand: each mutant gives a solutions page a wrong answer (a wrong formula, the
wrong model, a wrong constant) and the assert that checks that answer must fail on it.

    python tests/notebook_mutants.py [--pages 04_vqvae,06_prior] [--profile fast|full] [--record FILE] [--check]

The mutants live in ``tests/notebook_mutants/solutions_NN.py`` (a list ``MUTANTS`` of dicts: page, exercise,
cell, old, new, profile, why). For each page and profile the notebook runs once, top to bottom, in one kernel.
Before a cell that has mutants, each mutant's source (the cell with ``old`` replaced by ``new``) runs first and
must raise ``AssertionError``; then the cell's own source runs and must pass, which also restores the names the
cell defines. Mutants sit in the cell whose assert they test, and change no training setting, so that a mutated
cell loads its model from the checkpoint cache as the page does; what a mutant trains is saved to a scratch folder,
never to the cache (see _ENTER). Fill the cache first (run the page once in the profile: a mutant that misses the
cache trains): full-profile mutants need the page's full runs cached. Not collected by pytest (no test_
prefix): it runs whole notebooks. Serialise it with other training (``flock /tmp/vqvae-cpu.lock``).
"""
import argparse
import copy
import importlib.util
import os
import pathlib
import re
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = pathlib.Path(__file__).resolve().parents[1]
MUTANT_DIR = pathlib.Path(__file__).resolve().parent / "notebook_mutants"


# Run in the kernel around each mutant. A mutant that trains (a cache miss, or a class the notebook defines, which
# the checkpoint key does not fingerprint) must not save its wrong model under the page's name: the mutant sees the
# cache through a scratch folder of links, so it loads what is cached and saves elsewhere. The random generators
# are put back, so that the page's own cell draws what it draws in a plain run.
_ENTER = """
import os as _os, random as _random, tempfile as _tempfile, pathlib as _pathlib
import numpy as _np, torch as _torch
from vqvae_lib.checkpoint import checkpoint_dir as _checkpoint_dir
_real_cache, _saved_env = _checkpoint_dir(), _os.environ.get("VQVAE_CHECKPOINTS")
_scratch = _pathlib.Path(_tempfile.mkdtemp(prefix="mutant-cache-"))
for _p in (_real_cache.glob("*") if _real_cache.is_dir() else []):
    (_scratch / _p.name).symlink_to(_p.resolve())
_os.environ["VQVAE_CHECKPOINTS"] = str(_scratch)
_rng = (_torch.get_rng_state(), _torch.cuda.get_rng_state_all() if _torch.cuda.is_available() else None,
        _random.getstate(), _np.random.get_state())
"""
_LEAVE = """
if _saved_env is None:
    _os.environ.pop("VQVAE_CHECKPOINTS", None)
else:
    _os.environ["VQVAE_CHECKPOINTS"] = _saved_env
_torch.set_rng_state(_rng[0])
if _rng[1] is not None:
    _torch.cuda.set_rng_state_all(_rng[1])
_random.setstate(_rng[2]); _np.random.set_state(_rng[3])
import shutil as _shutil
_shutil.rmtree(_scratch, ignore_errors=True)
"""


def load_mutants():
    mutants = []
    for path in sorted(MUTANT_DIR.glob("solutions_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        mutants += module.MUTANTS
    return mutants


def locate(nb, mutant):
    """Index of the one code cell containing mutant['cell'] and, once, mutant['old']."""
    hits = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and mutant["cell"] in c.source]
    if len(hits) != 1:
        raise ValueError(f"{mutant['page']} {mutant['exercise']}: cell marker {mutant['cell']!r} is in {len(hits)} "
                         "code cells, expected exactly 1; make the marker longer")
    source = nb.cells[hits[0]].source
    if source.count(mutant["old"]) != 1:
        raise ValueError(f"{mutant['page']} {mutant['exercise']}: 'old' occurs {source.count(mutant['old'])} times in "
                         f"cell {hits[0]}, expected exactly once: {mutant['old']!r}")
    return hits[0]


def check(mutants):
    """Every mutant names its exercise, its profile and its wrong answer, and finds its cell and text."""
    for page in sorted({m["page"] for m in mutants}):
        nb = nbformat.read(ROOT / "solutions" / f"{page}.ipynb", as_version=4)
        for m in (m for m in mutants if m["page"] == page):
            if m.get("profile") not in ("fast", "full") or not m.get("why") or not m.get("exercise"):
                raise ValueError(f"{page} {m.get('exercise')}: a mutant needs exercise, why and profile 'fast' or 'full'")
            locate(nb, m)


def where(error):
    """The line of the cell that raised, and the assert's message: which check caught the wrong answer."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error.traceback if hasattr(error, "traceback") else error))
    lines = re.findall(r"line (\d+)", text)
    message = str(error.evalue or "").strip().replace("|", "/")
    return f"line {lines[-1] if lines else '?'}" + (f": {message[:90]}" if message else "")


def run_page(page, profile, mutants):
    path = ROOT / "solutions" / f"{page}.ipynb"
    nb = nbformat.read(path, as_version=4)
    by_cell = {}
    for m in mutants:
        by_cell.setdefault(locate(nb, m), []).append(m)
    os.environ.pop("VQVAE_FAST", None)
    if profile == "fast":
        os.environ["VQVAE_FAST"] = "1"
    os.environ.setdefault("TQDM_DISABLE", "1")
    client = NotebookClient(nb, timeout=None, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    results = []
    last = max(by_cell)
    start = time.time()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if index > last:
                break
            if cell.cell_type != "code":
                continue
            for m in by_cell.get(index, []):
                mutated = copy.deepcopy(cell)
                mutated.source = cell.source.replace(m["old"], m["new"])
                t0 = time.time()
                client.execute_cell(nbformat.v4.new_code_cell(_ENTER), index)
                try:
                    client.execute_cell(mutated, index)
                    outcome = "MISSED (the cell passed)"
                except CellExecutionError as error:
                    outcome = (f"caught ({where(error)})" if error.ename == "AssertionError"
                               else f"OTHER ERROR ({error.ename})")
                finally:
                    client.execute_cell(nbformat.v4.new_code_cell(_LEAVE), index)
                results.append((m, outcome, time.time() - t0))
                print(f"{outcome}: {page} {m['exercise']} [{profile}] {m['why']}", flush=True)
            try:
                client.execute_cell(cell, index)  # the page's own cell: must pass, and restores its names
            except CellExecutionError as error:
                # its mutants' catches prove nothing if the cell fails without them
                print(f"PAGE CELL {index} FAILED ({error.ename}, {where(error)}): {page} [{profile}] stopped here",
                      flush=True)
                results = [(m, f"VOID (the page's own cell {index} failed: {where(error)})", t) if m in by_cell.get(index, [])
                           else (m, outcome, t) for m, outcome, t in results]
                results += [(m, f"NOT RUN (page cell {index} failed)", 0.0)
                            for i, ms in by_cell.items() if i > index for m in ms]
                break
    print(f"{page} [{profile}]: {time.time() - start:.0f} s", flush=True)
    return results


def only(mutants, key, names):
    """The mutants whose ``key`` ("page" or "exercise") is one of the comma-separated ``names``; a name with no
    mutant among those given stops the run, listing the names that have some."""
    wanted, known = set(names.split(",")), {m[key] for m in mutants}
    if wanted - known:
        sys.exit(f"no mutants for {sorted(wanted - known)}; {key}s with mutants here: {sorted(known)}")
    return [m for m in mutants if m[key] in wanted]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", help="comma-separated page names, e.g. 04_vqvae (default: every page with mutants)")
    parser.add_argument("--profile", choices=["fast", "full"], help="only this profile's mutants")
    parser.add_argument("--record", help="append a markdown table of the outcomes to this file")
    parser.add_argument("--exercises", help="comma-separated exercises, e.g. 'Ex 1,Ex 4' (default: all); the page's "
                        "cells still all run, only the other exercises' mutants are skipped")
    parser.add_argument("--check", action="store_true", help="only locate each mutant's cell and text; run nothing")
    args = parser.parse_args()
    mutants = load_mutants()
    if args.pages:
        mutants = only(mutants, "page", args.pages)
    if args.profile:
        mutants = [m for m in mutants if m["profile"] == args.profile]
    if args.exercises:
        mutants = only(mutants, "exercise", args.exercises)
    if args.check:
        check(mutants)
        print(f"{len(mutants)} mutants located")
        return
    results = []
    for page, profile in sorted({(m["page"], m["profile"]) for m in mutants}):
        results += run_page(page, profile, [m for m in mutants if (m["page"], m["profile"]) == (page, profile)])
    missed = [r for r in results if not r[1].startswith("caught")]
    print(f"{len(results) - len(missed)} of {len(results)} mutants caught")
    if args.record:
        with open(args.record, "a") as f:
            f.write("| page | exercise | profile | wrong answer | outcome | s |\n|---|---|---|---|---|---|\n")
            for m, outcome, seconds in results:
                f.write(f"| {m['page']} | {m['exercise']} | {m['profile']} | {m['why'].replace('|', chr(92) + '|')} | {outcome} | {seconds:.0f} |\n")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
