"""What a user loads and runs: update rules rebuilt from saved learned optimizers (`load_rule`),
the torch.optim wrapper, saving and loading, step forms and rule combinators."""
