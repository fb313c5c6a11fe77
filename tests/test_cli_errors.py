"""``vqvae-train`` and its user's mistakes: each ends in one line on stderr and exit status 2, before
any training; a bug inside training still shows its traceback."""

from __future__ import annotations

import shutil

import pytest
import torch

from vqvae_lib import cli, data
from vqvae_lib.vqvae import VQVAEConfig

TINY = ["--set", "hidden=16", "--set", "res_hidden=8", "--set", "code_dim=8", "--set", "num_codes=16",
        "--train-size", "64", "--batch-size", "32"]
VQ = ["vqvae", *TINY, "--checkpoint-dir", "{tmp}/out"]  # a tiny run: a case that wrongly trains ends fast
RESUME = ["vqvae", *TINY, "--checkpoint-dir", "{tmp}/run", "--name", "vq", "--resume"]  # vq.pt: 1 epoch of 2 steps
PRIOR = ["prior", "--set", "channels=8", "--set", "num_layers=1", "--batch-size", "2", "--checkpoint-dir", "{tmp}/out"]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="--amp is an error only without CUDA")

CASES = {  # argv, a part of the one line that the user must see
    "no model": ([], "required: model"),
    "unknown model": (["gan"], "invalid choice: 'gan'"),
    "unknown flag": ([*VQ, "--bogus"], "unrecognized arguments: --bogus"),
    "epochs not a number": ([*VQ, "--epochs", "two"], "--epochs: expected a positive integer, got 'two'"),
    "zero epochs": ([*VQ, "--epochs", "0"], "--epochs: expected a positive integer, got '0'"),
    "zero steps": ([*VQ, "--steps", "0"], "--steps: expected a positive integer"),
    "negative steps": ([*VQ, "--steps", "-3"], "--steps: expected a positive integer"),
    "zero batch size": ([*VQ, "--batch-size", "0"], "--batch-size: expected a positive integer"),
    "zero train size": ([*VQ, "--train-size", "0"], "--train-size: expected a positive integer"),
    "zero learning rate": ([*VQ, "--lr", "0"], "--lr: expected a positive learning rate"),
    "nan learning rate": ([*VQ, "--lr", "nan"], "--lr: expected a positive learning rate"),
    "negative seed": ([*VQ, "--seed", "-1"], "--seed: expected an integer in 0..2**32-1"),
    "negative workers": ([*VQ, "--num-workers", "-1"], "--num-workers: expected a number >= 0"),
    "epochs and steps": ([*VQ, "--epochs", "1", "--steps", "2"], "not allowed with argument"),
    "unknown dataset": ([*VQ, "--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    "--set without =": ([*VQ, "--set", "hidden"], "--set expects FIELD=VALUE"),
    "--set unknown field": ([*VQ, "--set", "num_kodes=16"], "FIELD one of in_channels, num_codes"),
    "--set int": ([*VQ, "--set", "hidden=abc"], "--set hidden: expected int, got 'abc'"),
    "--set int given a float": ([*VQ, "--set", "num_codes=16.5"], "--set num_codes: expected int, got '16.5'"),
    "--set float": ([*VQ, "--set", "beta=high"], "--set beta: expected float, got 'high'"),
    "--set bool": ([*VQ, "--set", "kmeans_init=maybe"], "--set kmeans_init: expected bool, got 'maybe'"),
    "--set optional int": ([*VQ, "--set", "restart_after=soon"], "expected int | None, got 'soon'"),
    "--set levels not a literal": ([*VQ, "--set", "quantizer=fsq", "--set", "levels=eight"],
                                   "--set levels: expected tuple[int, ...] | None, got 'eight'"),
    "--set levels not ints": ([*VQ, "--set", "quantizer=fsq", "--set", "levels=(8, 5.5)"], "got '(8, 5.5)'"),
    "config: unknown quantizer": ([*VQ, "--set", "quantizer=vqq"], "--set: unknown quantizer 'vqq'"),
    "config: fsq without levels": ([*VQ, "--set", "quantizer=fsq"], "an FSQ config needs levels"),
    "config: lfq code count": ([*VQ, "--set", "quantizer=lfq"], "num_codes = 2**code_dim = 256, got 16"),
    "config: no codes per position": ([*VQ, "--set", "codes_per_position=0"], "codes_per_position must be at least 1"),
    "config: zero codes": ([*VQ, "--set", "num_codes=0"], "num_codes must be a positive integer"),
    "config: zero hidden channels": ([*VQ, "--set", "hidden=0"], "hidden must be a positive integer"),
    "model: ema decay": ([*VQ, "--set", "quantizer=ema", "--set", "decay=1.5"], "need 0 <= decay < 1"),
    "prior config: one code": ([*PRIOR, "--set", "num_codes=1"], "need num_codes >= 2"),
    "prior model: even kernel": ([*PRIOR, "--set", "kernel_size=2"], "kernel_size must be a positive odd number"),
    "data: channels": ([*VQ, "--set", "in_channels=3"], "add --set in_channels=1"),
    "data: vae image size": (["vae", "--set", "image_size=32", "--checkpoint-dir", "{tmp}/out"],
                             "add --set image_size=28"),
    "data: train size too big": ([*VQ, "--train-size", "100000"], "--train-size must be in 1..60000"),
    "data: no batch": ([*VQ, "--train-size", "10"], "10 examples make no batch of 32"),
    "data: missing dataset": ([*VQ, "--dataset", "mnist"], "The mnist dataset is not in"),
    "codes: none": (PRIOR, "pass --codes FILE"),
    "codes: missing file": ([*PRIOR, "--codes", "{tmp}/missing.pt"], "--codes: there is no file"),
    "codes: a folder": ([*PRIOR, "--codes", "{tmp}/folder.pt"], "--codes: there is no file"),
    "codes: garbage": ([*PRIOR, "--codes", "{tmp}/run/garbage.pt"], "garbage.pt cannot be read"),
    "codes: a tensor": ([*PRIOR, "--codes", "{tmp}/tensor.pt"], "holds a Tensor, not what vqvae-train writes"),
    "codes: another dict": ([*PRIOR, "--codes", "{tmp}/other.pt"], "is not a code file"),
    "codes: another codebook": ([*PRIOR, "--codes", "{tmp}/codes16.pt"], "add --set num_codes=16"),
    "codes for a vqvae": ([*VQ, "--codes", "{tmp}/codes16.pt"], "--codes applies to the prior model"),
    "export codes of a prior": ([*PRIOR, "--export-codes", "{tmp}/c.pt"], "--export-codes applies to the vqvae"),
    "export codes under a file": ([*VQ, "--export-codes", "{tmp}/afile/codes.pt"], "afile is not a folder"),
    "checkpoint dir is a file": ([*VQ, "--checkpoint-dir", "{tmp}/afile"], "afile is not a folder"),
    "checkpoint is a folder": ([*VQ, "--checkpoint-dir", "{tmp}", "--name", "folder"], "is a folder"),
    "bf16 and float64": ([*VQ, "--bf16", "--float64"], "--bf16 and --float64 ask for two precisions"),
    "amp on the CPU": pytest.param([*VQ, "--amp"], "--amp (fp16 mixed precision) needs a CUDA GPU", marks=NO_GPU),
    "resume: no checkpoint": ([*RESUME, "--name", "none"], "--resume: there is no file"),
    "resume: truncated": ([*RESUME, "--name", "truncated"], "truncated.pt cannot be read"),
    "resume: garbage": ([*RESUME, "--name", "garbage"], "garbage.pt cannot be read"),
    "resume: another model": (["vae", "--checkpoint-dir", "{tmp}/run", "--name", "vq", "--resume"],
                              "holds no vae run"),
    "resume: another config": ([*RESUME, "--epochs", "2", "--set", "beta=0.5"], "a different config, beta=0.25 (now 0.5)"),
    "resume: another train size": ([*RESUME, "--epochs", "2", "--train-size", "128"], "--train-size 64 (now 128)"),
    "resume: another batch size": ([*RESUME, "--epochs", "2", "--batch-size", "16"], "--batch-size 32 (now 16)"),
    "resume: another dataset": ([*RESUME, "--epochs", "2", "--dataset", "mnist"], "--dataset fashion_mnist (now mnist)"),
    "resume: other epochs": ([*RESUME, "--steps", "1"], "had 2 steps and this run's have 1"),
    "resume: nothing left": ([*RESUME, "--epochs", "1"], "nothing left to train: ask for more (--epochs 2)"),
}


@pytest.fixture(scope="module")
def made_once(tmp_path_factory):
    """A trained checkpoint (``run/vq.pt``) and the broken or wrong files that the cases name."""
    tmp = tmp_path_factory.mktemp("cli")
    cli.main([*(a.format(tmp=tmp) for a in RESUME[:-1]), "--epochs", "1"])
    checkpoint = (tmp / "run" / "vq.pt").read_bytes()
    (tmp / "run" / "truncated.pt").write_bytes(checkpoint[: len(checkpoint) // 2])
    (tmp / "run" / "garbage.pt").write_text("not a checkpoint\n")
    torch.save(torch.zeros(3), tmp / "tensor.pt")
    torch.save({"weights": torch.zeros(3)}, tmp / "other.pt")
    torch.save({"codes": torch.zeros(4, 7, 7, dtype=torch.long), "labels": torch.zeros(4, dtype=torch.long),
                "num_codes": 16}, tmp / "codes16.pt")
    (tmp / "afile").write_text("a file where a folder should be\n")
    (tmp / "folder.pt").mkdir()
    return tmp


@pytest.fixture
def files(made_once, tmp_path):
    """A copy of them for each test, so that a case that wrongly trains cannot change the next one's files."""
    return shutil.copytree(made_once, tmp_path / "cli")


@pytest.mark.parametrize("argv, message", CASES.values(), ids=CASES)
def test_a_user_error_is_one_line_and_exit_status_2(argv, message, files, capsys, monkeypatch):
    monkeypatch.setattr(data, "network_available", lambda host, timeout=0: False)  # offline, at once
    if "mnist" in argv:
        monkeypatch.setenv("VQVAE_DATA", str(files / "no-data"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        cli.main([a.format(tmp=files) for a in argv])
    out, err = capsys.readouterr()
    assert exit.value.code == 2, err
    assert err.startswith("vqvae-train: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err, err
    assert "saved" not in out and "epoch" not in out, out  # refused before any training


def test_set_reads_each_value_as_its_fields_type():
    config = cli.parse_settings(VQVAEConfig, ["kmeans_init=false", "restart_after=None", "init_scale=none", "beta=1"])
    assert config.kmeans_init is False and config.restart_after is None and config.init_scale is None
    assert config.beta == 1.0 and isinstance(config.beta, float)
    fsq = cli.parse_settings(VQVAEConfig, ["quantizer=fsq", "levels=8, 5, 5, 5", "code_dim=4", "num_codes=1000"])
    assert fsq.levels == (8, 5, 5, 5)
    for word, value in [("TRUE", True), ("yes", True), ("1", True), ("No", False), ("0", False)]:
        assert cli.parse_settings(VQVAEConfig, [f"kmeans_init={word}"]).kmeans_init is value
    assert cli.parse_settings(VQVAEConfig, ["restart_after=20"]).restart_after == 20


def test_help_is_plain_text(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert exit.value.code == 0 and "torchrun" in out
    assert "``" not in out and ":func:" not in out, out


@pytest.mark.parametrize("bug", [RuntimeError, TypeError, ValueError])
def test_an_error_during_training_keeps_its_traceback(bug, files, monkeypatch):
    def broken_fit(*args, **kwargs):
        raise bug("a bug inside training")

    monkeypatch.setattr(cli, "fit", broken_fit)
    with pytest.raises(bug, match="a bug inside training"):
        cli.main([a.format(tmp=files) for a in VQ])


@pytest.mark.filterwarnings("error")
def test_bf16_trains_on_any_device(files, capsys):
    """The one precision choice that is not an error on the CPU: bf16 autocast, no gradient scaler."""
    cli.main([a.format(tmp=files) for a in VQ] + ["--bf16", "--steps", "2", "--name", "bf16"])
    out, _ = capsys.readouterr()
    model, history = cli.load_trained(files / "out" / "bf16.pt")
    assert len(history.train) == 2 and "epoch 1/1" in out
