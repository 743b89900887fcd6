"""What proposes steps: hand-designed optimizers, SB3-trained policies, guided policy search and
meta-LSTMs, all as `l2o_gym.update_rule.UpdateRule`s. Agents depend on `l2o_gym`, never on a task."""
