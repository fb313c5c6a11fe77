"""Mutation check, run by hand: each mutant re-introduces a bug that issue 10 fixed (or a plausible new
one); the named test must fail on it. `python tests/mutation_check.py` applies one at a time and restores
the file. Not collected by pytest (no test_ prefix): it rewrites library files while it runs."""
import subprocess, sys, pathlib
ROOT = pathlib.Path(__file__).resolve().parents[1]
MUTANTS = [
 ("EMA unused codes decay (old rule)", "vqvae_lib/quantize.py",
  "self.codebook.copy_(torch.where(chosen, self.code_sum / smoothed.unsqueeze(1), self.codebook))",
  "self.codebook.copy_(self.code_sum / smoothed.unsqueeze(1))",
  "tests/test_quantize_ema.py::test_a_code_no_vector_chooses_stays_exactly_where_it_is_for_2000_steps"),
 ("restart donors with replacement", "vqvae_lib/quantize.py",
  "donors = torch.randperm(len(flat), device=flat.device)[: len(dead)]",
  "donors = torch.randint(len(flat), (len(dead),), device=flat.device)",
  "tests/test_quantize_ema.py::test_restart_donors_are_drawn_without_replacement"),
 ("EMA statistics forced to fp32", "vqvae_lib/quantize.py",
  "flat = flat.to(self.code_sum.dtype)", "flat = flat.float()",
  "tests/test_quantize_ema.py::test_a_vqvae_trains_in_float64"),
 ("no empty-batch check", "vqvae_lib/quantize.py",
  "    if z_e.numel() == 0:\n", "    if False:\n",
  "tests/test_quantize_ema.py::test_an_empty_batch_is_refused_with_a_message"),
 ("evaluate: unweighted batch means", "vqvae_lib/train.py",
  "values = _stacked(out, device) * n", "values = _stacked(out, device) * 4",
  "tests/test_train.py::test_evaluate_weights_each_batch_by_its_size"),
 ("encode through the quantiser's forward", "vqvae_lib/vqvae.py",
  "return nearest_code(z_e.permute(0, 2, 3, 1).reshape(-1, d), self.quantizer.codebook).view(b, h, w)",
  "return self.quantizer(z_e).indices",
  "tests/test_vqvae.py::test_encode_never_updates_a_stateful_codebook_while_a_training_forward_does"),
 ("gumbel noise on a hard-coded device", "vqvae_lib/estimators.py",
  "u = torch.rand(like.shape, generator=generator, dtype=dtype, device=like.device)",
  "u = torch.rand(like.shape, generator=generator, dtype=dtype, device='cpu')",
  "tests/test_estimators.py::test_gumbel_noise_is_at_least_fp32_and_follows_the_device"),
 ("key hashes raw source (docstrings count)", "vqvae_lib/checkpoint.py",
  "    tree = _DropDocstrings().visit(ast.parse(source))\n    return _sha1(ast.dump(tree).encode())",
  "    return _sha1(source.encode())",
  "tests/test_checkpoint.py::test_editing_a_docstring_or_comment_keeps_the_key_and_editing_code_changes_it"),
 ("a hit does not restore the RNG", "vqvae_lib/checkpoint.py",
  "        if rng is not None:\n            _set_rng_state(rng, device, train_loader)",
  "        pass",
  "tests/test_checkpoint.py::test_a_hit_leaves_the_same_rng_state_as_a_miss"),
 ("key without batch size", "vqvae_lib/checkpoint.py",
  '"batch_size": loader.batch_size,', '',
  "tests/test_checkpoint.py::test_every_setting_that_changes_training_changes_the_key"),
 ("class bias on the vertical stack only", "vqvae_lib/prior.py",
  "v_pre, h_pre = v_pre + v_bias, h_pre + h_bias", "v_pre, h_pre = v_pre + v_bias, h_pre",
  "tests/test_prior.py::test_class_conditioning_reaches_every_position_and_each_example_gets_its_own_label"),
 ("NVIL statistics not saved", "vqvae_lib/discrete.py",
  'self.register_buffer("signal_mean", torch.zeros(()))', 'self.register_buffer("signal_mean", torch.zeros(()), persistent=False)',
  "tests/test_checkpoint.py::test_buffers_survive_a_checkpoint_round_trip"),
 ("an upward import", "vqvae_lib/nn.py",
  "import torch\nfrom torch import nn\n", "import torch\nfrom torch import nn\n\nfrom .train import fit  # noqa\n",
  "tests/test_layers.py"),
 ("plot without a y label", "vqvae_lib/plot.py",
  "    ax.set_ylabel(ylabel)\n", "",
  "tests/test_plot.py::test_plot_history_draws_train_and_test_curves_with_labels"),
 ("old cancelling likelihood", "vqvae_lib/likelihood.py",
  "return F.logsigmoid(a) + F.logsigmoid(-b) + _log1mexp(-width)",
  "flip = (a + b) > 0\n    hi, lo = torch.where(flip, -b, a), torch.where(flip, -a, b)\n    log_hi, log_lo = F.logsigmoid(hi), F.logsigmoid(lo)\n    return log_hi + _log1mexp(log_lo - log_hi)",
  "tests/test_likelihood.py::test_wide_logistics_match_high_precision_arithmetic"),
 ("several codes per position interleaved wrongly", "vqvae_lib/vqvae.py",
  "return z_e.view(b, c, -1, h, w).permute(0, 2, 3, 4, 1).reshape(b, -1, h, w * c)",
  "return z_e.view(b, c, -1, h, w).permute(0, 2, 3, 1, 4).reshape(b, -1, h, w * c)",
  "tests/test_vqvae.py::test_several_codes_per_position_quantise_each_slice_and_round_trip"),
 ("VQ terms always summed", "vqvae_lib/vqvae.py",
  'vq_weight = (latents if self.config.vq_terms == "sum" else 1) * z_e.shape[1] / dims',
  'vq_weight = latents * z_e.shape[1] / dims',
  "tests/test_vqvae.py::test_averaging_the_vq_terms_over_latents_divides_their_weight_by_n"),
]
ok = True
for label, path, old, new, test in MUTANTS:
    f = ROOT / path
    text = f.read_text()
    assert text.count(old) == 1, (label, "pattern not found once")
    f.write_text(text.replace(old, new))
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", test],
                           cwd=ROOT, capture_output=True, text=True)
    finally:
        f.write_text(text)
    caught = r.returncode != 0
    ok &= caught
    print(f"{'caught' if caught else 'MISSED'}: {label}  ({test.split('::')[-1]})")
sys.exit(0 if ok else 1)
