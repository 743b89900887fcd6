"""What proposes steps, all as `l2o_gym.update_rule.UpdateRule`s, in rooms by kind:

- `agents.runtime`: what a user loads and runs (saved learned optimizers, the torch.optim wrapper);
- `agents.rl`: stable-baselines3 training (warm starts, validation, hyperparameters);
- `agents.meta`: BPTT meta-training of the L2L LSTM and the meta-learner LSTM;
- `agents.hand_designed`: hand-designed optimizers and their tuning.

Agents depend on `l2o_gym`, never on a task."""
