"""Mutants for solutions/07_learning_rates: each gives an exercise a wrong answer that its assert must catch."""
MUTANTS = [
    # Exercise 1: the paper's rate
    dict(page="07_learning_rates", exercise="Ex 1", cell="loss_at_paper = {kind: paper[kind] - sweep[kind][chosen[kind]]",
         old="own_prior_bound(train_row(kind, PAPER_LR)[0], validation_loader)",
         new='bits_per_dim(evaluate(train_row(kind, PAPER_LR)[0], validation_loader)["recon"])',
         profile="full", why="the paper's rate scored by its reconstruction term alone, without the latents' cost"),
    dict(page="07_learning_rates", exercise="Ex 1", cell="loss_at_paper = {kind: paper[kind] - sweep[kind][chosen[kind]]",
         old="loss_at_paper = {kind: paper[kind] - sweep[kind][chosen[kind]] for kind in EQUAL}",
         new="loss_at_paper = {kind: paper[kind] - sweep[kind][1e-3] for kind in EQUAL}",
         profile="full", why="the loss at 2e-4 measured from 1e-3's score, not the chosen rate's"),
    dict(page="07_learning_rates", exercise="Ex 1", cell="loss_at_paper = {kind: paper[kind] - sweep[kind][chosen[kind]]",
         old="loss_at_paper = {kind: paper[kind] - sweep[kind][chosen[kind]] for kind in EQUAL}",
         new="loss_at_paper = {kind: (paper[kind] - sweep[kind][chosen[kind]]) / (sweep[kind][1e-3] - sweep[kind][chosen[kind]])"
             " for kind in EQUAL}",
         profile="full", why="the loss at 2e-4 in units of 1e-3's loss: the VAE then looks hurt most"),
    # Exercise 2: choosing the VQ-VAE's rate by its learned-prior bound
    dict(page="07_learning_rates", exercise="Ex 2", cell="by_uniform = min(ex2, key=lambda lr: ex2[lr][\"uniform\"])",
         old='by_uniform = min(ex2, key=lambda lr: ex2[lr]["uniform"])',
         new='by_uniform = max(ex2, key=lambda lr: ex2[lr]["uniform"])',
         profile="full", why="the rate with the largest bound taken as best"),
    dict(page="07_learning_rates", exercise="Ex 2", cell="by_uniform = min(ex2, key=lambda lr: ex2[lr][\"uniform\"])",
         old='learned=bits_per_dim(bound["nelbo"])',
         new='learned=bits_per_dim(bound["latents"])',
         profile="full", why="the learned-prior score as the codes' cost alone, without the reconstruction"),
    dict(page="07_learning_rates", exercise="Ex 2", cell="by_uniform = min(ex2, key=lambda lr: ex2[lr][\"uniform\"])",
         old='fewest = min(ex2, key=lambda lr: ex2[lr]["used"])',
         new='fewest = max(ex2, key=lambda lr: ex2[lr]["used"])',
         profile="full", why="the rate that uses the most codes taken for the fewest"),
    dict(page="07_learning_rates", exercise="Ex 2", cell="by_uniform = min(ex2, key=lambda lr: ex2[lr][\"uniform\"])",
         old='learned=bits_per_dim(bound["nelbo"])',
         new='learned=bits_per_dim(bound["recon"] - bound["latents"])',
         profile="full", why="sign error: the codes' cost subtracted from the reconstruction"),
]
