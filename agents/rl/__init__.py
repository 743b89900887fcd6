"""Reinforcement-learning training of update rules with stable-baselines3: the training loop,
hyperparameters, imitation and backpropagation warm starts, held-out validation."""
