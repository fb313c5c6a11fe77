"""DDP on the CPU with gloo: 2 ranks with half a batch each train like 1 process with the whole batch.

DDP all-reduces gradients; the quantisers must keep their own state (EMA counts and sums, k-means
initialisation, restarts, idle counts) equal themselves (vqvae_lib.distributed). Each test bounds its
time, and the harness kills every rank on failure.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ddp_harness import alive, free_port, run_ranks
from vqvae_lib import distributed
from vqvae_lib.cli import DistributedLoss, load_trained, main as cli_main
from vqvae_lib.quantizers.residual import ResidualVectorQuantizer
from vqvae_lib.vqvae import VQVAE, VQVAEConfig

STEPS, BATCH = 6, 16  # 16 images x 49 latents = 784 encoder vectors a step, 392 per rank
TINY = dict(hidden=16, res_hidden=8, code_dim=8, num_codes=16)
AIDS = dict(kmeans_init=True, restart_after=2)  # k-means on the first batch; restarts from step 3 on
CONFIGS = {
    "vq": VQVAEConfig(quantizer="vq", **TINY, **AIDS),
    "ema": VQVAEConfig(quantizer="ema", **TINY, **AIDS),
}
# The tolerance. Sums over 392 + 392 vectors and two ranks' mean gradients differ from sums over 784
# in the last bits. In fp32 that is not enough for a test: Adam divides each gradient by its running
# RMS, so a coordinate whose gradient is near zero may step either way (up to lr), and a near-tie
# between two codes may flip. So these runs are in float64, where the two agree to 7e-16; without
# synchronisation the codebooks differ by 0.07 (VQ) and the EMA counts by 8.
ATOL, RTOL = 1e-10, 1e-10


def _batches():
    g = torch.Generator().manual_seed(1)
    # Images with structure (blobs of varying brightness), not noise, so codes are used unevenly.
    base = torch.rand(STEPS, BATCH, 1, 7, 7, generator=g)
    images = torch.nn.functional.interpolate(base.flatten(0, 1), size=28, mode="bilinear")
    return images.view(STEPS, BATCH, 1, 28, 28).double()


def _train(config: VQVAEConfig, rank: int = 0, world_size: int = 1, sync: bool = True) -> dict:
    """STEPS Adam steps on rank ``rank``'s contiguous share of each global batch; the final state."""
    torch.manual_seed(0)  # the same initial weights on every rank
    model = VQVAE(replace(config, sync=sync)).double()
    torch.rand(rank)  # rank 1's random stream drifts (as if it drew for something else): rank 0's draws must win
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = DistributedLoss(model, torch.device("cpu")) if world_size > 1 else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    share = BATCH // world_size
    restarts, perplexities = 0, []
    for x in _batches():
        idle_before = model.quantizer.idle_steps.clone()
        out = trained.loss(x[rank * share:(rank + 1) * share])
        loss, perplexities = out["loss"], [*perplexities, out["perplexity"].item()]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        restarts += int(((idle_before + 1 >= config.restart_after) & (model.quantizer.idle_steps == 0)).sum())
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()}, "restarts": restarts,
            "perplexities": perplexities, "dead": model.quantizer.dead_codes(idle_for=2),
            "warnings": [str(w.message) for w in caught]}


def _ranks(rank: int, world_size: int) -> dict:
    """Everything the 2-rank tests need from one start of the processes (starting them is the slow part)."""
    assert distributed.is_distributed() and distributed.world_size() == world_size
    results = {sync: {name: _train(config, rank, world_size, sync) for name, config in CONFIGS.items()}
               for sync in (True, False)}
    stages = ResidualVectorQuantizer(3, 8, 4, dropout=True)
    for stage in stages.stages:
        stage.sync = False  # so that disagreeing ranks show as different stage counts, not as a hang
    results["stages_used"] = [stages(torch.randn(2, 4, 3, 3)).indices.shape[1] for _ in range(8)]
    results["gathered"] = distributed.gather_rows(torch.full((rank + 1, 2), float(rank)))  # 1 and 2 rows
    try:
        distributed.all_reduce_sum_(torch.zeros(4, 2).t())
    except ValueError as error:
        results["refused"] = str(error)
    return results


@pytest.fixture(scope="module")
def one_process():
    return {name: _train(config) for name, config in CONFIGS.items()}


@pytest.fixture(scope="module")
def two_ranks():
    return run_ranks(_ranks, 2, timeout=120)


@pytest.mark.slow  # starts rank processes: `pytest -m slow` runs it, and CI does (pyproject.toml)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_ddp_equals_one_process(name, one_process, two_ranks):
    reference = one_process[name]
    assert reference["restarts"] > 0, "the test must exercise dead-code restarts"
    for rank, result in enumerate(two_ranks):
        for key, value in reference["state"].items():
            torch.testing.assert_close(result[True][name]["state"][key], value, atol=ATOL, rtol=RTOL,
                                       msg=lambda m: f"rank {rank}, {name}, {key}: {m}")
    for result in two_ranks:  # the perplexity and the dead codes are the whole batch's, on every rank
        assert result[True][name]["perplexities"] == pytest.approx(reference["perplexities"], rel=1e-9)
        assert result[True][name]["dead"] == reference["dead"]
    assert two_ranks[0][True][name]["warnings"] == []  # no broadcast_buffers deprecation warning for notebooks
    # The two ranks agree with each other exactly: they reduce to the same numbers.
    for key, value in two_ranks[0][True][name]["state"].items():
        assert torch.equal(value, two_ranks[1][True][name]["state"][key]), key


@pytest.mark.slow  # starts rank processes: `pytest -m slow` runs it, and CI does (pyproject.toml)
def test_desync_is_caught_without_synchronisation(one_process, two_ranks):
    """With ``sync = False`` each rank fits k-means and restarts to its own half, and EMA to its own
    counts: the codebooks leave the one-process run and each other far beyond the tolerance."""
    unsynced = [result[False] for result in two_ranks]
    codebook = "quantizer.codebook"
    for name in CONFIGS:
        gaps = [(r[name]["state"][codebook] - one_process[name]["state"][codebook]).abs().max().item() for r in unsynced]
        assert max(gaps) > 0.01, (name, gaps)
        assert not torch.allclose(unsynced[0][name]["state"][codebook], unsynced[1][name]["state"][codebook],
                                  atol=ATOL, rtol=RTOL), name


def test_helpers_are_no_ops_in_one_process():
    x = torch.arange(6.0).view(3, 2)
    assert not distributed.is_distributed() and distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.all_reduce_sum_(x) is x and distributed.broadcast_(x) is x and distributed.gather_rows(x) is x


@pytest.mark.slow  # starts rank processes: `pytest -m slow` runs it, and CI does (pyproject.toml)
def test_quantiser_dropout_runs_the_same_stages_on_every_rank(two_ranks):
    assert two_ranks[0]["stages_used"] == two_ranks[1]["stages_used"]
    assert len(set(two_ranks[0]["stages_used"])) > 1  # the draw really varies


@pytest.mark.slow  # starts rank processes: `pytest -m slow` runs it, and CI does (pyproject.toml)
def test_gather_rows_keeps_rank_order_and_uneven_sizes_and_views_are_refused(two_ranks):
    assert two_ranks[0]["gathered"].tolist() == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    assert "contiguous" in two_ranks[0]["refused"]


def _fail_on_rank_one(rank: int, world_size: int, pid_file: str):
    with open(pid_file, "a") as f:
        f.write(f"{os.getpid()}\n")
    if rank == 1:
        raise RuntimeError("rank 1 breaks before the collective")
    distributed.all_reduce_sum_(torch.ones(1))  # rank 0 would wait here for ever
    return "unreachable"


@pytest.mark.slow  # starts rank processes: `pytest -m slow` runs it, and CI does (pyproject.toml)
def test_a_failing_rank_is_reported_and_every_process_cleaned_up(tmp_path):
    pid_file = tmp_path / "pids"
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="rank 1"):
        run_ranks(_fail_on_rank_one, 2, str(pid_file), timeout=60)
    assert time.monotonic() - start < 30
    pids = [int(line) for line in pid_file.read_text().split()]
    assert len(pids) == 2 and alive(pids) == []


# The command line -------------------------------------------------------------------------------

CLI_TINY = ["--set", "hidden=16", "--set", "res_hidden=8", "--set", "code_dim=8", "--set", "num_codes=16",
            "--train-size", "256", "--batch-size", "32"]


@contextlib.contextmanager
def _refused(capsys, match: str):
    """The command line refuses: exit status 2, and ``match`` in the one line it writes to stderr."""
    with pytest.raises(SystemExit) as exit:
        yield
    assert exit.value.code == 2 and match in capsys.readouterr().err


def _cli(tmp_path: Path, name: str, *extra: str) -> Path:
    cli_main(["vqvae", *CLI_TINY, "--checkpoint-dir", str(tmp_path), "--name", name, *extra])
    return tmp_path / f"{name}.pt"


def test_resume_equals_training_straight_through(tmp_path, capsys):
    # 128 codes for 49 x 32 vectors a batch: codes keep dying, so restarts draw donors in epoch 2 too,
    # and only a resume that restores the random state draws the same ones
    ema = ["--set", "quantizer=ema", "--set", "kmeans_init=True", "--set", "restart_after=2", "--set", "num_codes=128"]
    straight = _cli(tmp_path, "straight", *ema, "--epochs", "2")
    _cli(tmp_path, "resumed", *ema, "--epochs", "1")
    resumed = _cli(tmp_path, "resumed", *ema, "--epochs", "2", "--resume")
    (a, history_a), (b, history_b) = load_trained(straight, "cpu"), load_trained(resumed, "cpu")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert len(history_b.train) == len(history_a.train) == 16
    assert [r["loss"] for r in history_b.train] == [r["loss"] for r in history_a.train]
    assert isinstance(a, VQVAE) and not a.training  # loads into the chapters' model class
    out = capsys.readouterr().out
    assert out.count("epoch 2/2") == 2 and "epoch 1/1" in out


def test_resume_refuses_a_missing_checkpoint_and_another_config(tmp_path, capsys):
    with _refused(capsys, "--resume: there is no file"):
        _cli(tmp_path, "none", "--resume")
    _cli(tmp_path, "vq", "--steps", "2")
    with _refused(capsys, "different config"):
        _cli(tmp_path, "vq", "--steps", "4", "--set", "beta=0.5", "--resume")


def test_cli_rejects_bad_settings(tmp_path, monkeypatch, capsys):
    from vqvae_lib import cli

    with _refused(capsys, "FIELD=VALUE"):
        _cli(tmp_path, "bad", "--set", "num_kodes=16")
    with _refused(capsys, "unknown quantizer"):
        _cli(tmp_path, "bad", "--set", "quantizer=vqq")
    monkeypatch.setattr(cli, "world_size", lambda: 2)
    with _refused(capsys, "multiple of the 2 processes"):
        _cli(tmp_path, "bad", "--batch-size", "33")
    with _refused(capsys, "add --set in_channels=1"):
        _cli(tmp_path, "bad", "--set", "in_channels=3")
    with _refused(capsys, "--codes FILE"):
        cli_main(["prior", "--checkpoint-dir", str(tmp_path)])


@pytest.mark.slow  # starts rank processes: `pytest -m slow` runs it, and CI does (pyproject.toml)
def test_torchrun_two_processes_train_like_one(tmp_path):
    """``torchrun --nproc_per_node=2 -m vqvae_lib`` against one process, end to end: the same
    global batches (DistributedSampler's two shards are one process's batch), the same result. EMA
    without k-means or restarts, whose draws would see the batch's vectors in a different order."""
    args = ["vqvae", *CLI_TINY, "--set", "quantizer=ema", "--set", "hidden=64", "--set", "res_hidden=32", "--steps", "6",
            "--float64", "--checkpoint-dir", str(tmp_path)]  # Chapter 04's trunk, whose 1x1 convolutions made DDP warn
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
                str(free_port()), "-m", "vqvae_lib"]
    proc = subprocess.Popen([*torchrun, *args, "--name", "two"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    assert proc.returncode == 0, out
    assert out.count("epoch 1/1") == 1 and "2 process(es)" in out  # rank 0 alone prints
    assert "Warning" not in out, out  # nothing for a reader to wonder about
    cli_main([*args, "--name", "one"])
    (two, _), (one, _) = load_trained(tmp_path / "two.pt", "cpu"), load_trained(tmp_path / "one.pt", "cpu")
    for key, value in one.state_dict().items():
        torch.testing.assert_close(two.state_dict()[key], value, atol=ATOL, rtol=RTOL, msg=lambda m: f"{key}: {m}")


def test_fit_tells_a_distributed_sampler_each_epoch_so_it_reshuffles():
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from vqvae_lib.train import fit

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w, self.seen = torch.nn.Parameter(torch.zeros(())), []

        def loss(self, x):
            self.seen.append(x.flatten().tolist())
            return {"loss": self.w * x.sum()}

    data = TensorDataset(torch.arange(8.0))
    loader = DataLoader(data, batch_size=8, sampler=DistributedSampler(data, num_replicas=1, rank=0, seed=0))
    model = Recorder()
    fit(model, loader, epochs=3, lr=0.1)
    assert all(sorted(batch) == list(range(8)) for batch in model.seen)
    assert len({tuple(batch) for batch in model.seen}) == 3  # a new order every epoch


def test_cli_trains_the_vae_and_a_prior_on_exported_codes(tmp_path, capsys):
    vqvae_args = ["--steps", "2", "--export-codes", str(tmp_path / "codes.pt")]
    _cli(tmp_path, "vq", *vqvae_args)
    saved = torch.load(tmp_path / "codes.pt", weights_only=True)
    assert saved["codes"].shape == (256, 7, 7) and saved["num_codes"] == 16 and saved["labels"].shape == (256,)
    prior_args = ["prior", "--codes", str(tmp_path / "codes.pt"), "--set", "channels=8", "--set", "num_layers=2",
                  "--batch-size", "32", "--steps", "2", "--lr", "1e-3", "--checkpoint-dir", str(tmp_path)]
    with _refused(capsys, "--set num_codes=16"):
        cli_main(prior_args)
    cli_main([*prior_args, "--set", "num_codes=16", "--set", "num_classes=10"])
    prior, history = load_trained(tmp_path / "prior.pt", "cpu")
    assert prior.conditional and len(history.train) == 2
    cli_main(["vae", "--set", "hidden=16", "--set", "res_hidden=8", "--train-size", "64", "--batch-size", "32",
              "--epochs", "1", "--checkpoint-dir", str(tmp_path)])
    vae, history = load_trained(tmp_path / "vae.pt", "cpu")
    assert type(vae).__name__ == "GaussianVAE" and len(history.train) == 2
