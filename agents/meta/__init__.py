"""Meta-training by backpropagation through unrolled optimization: the L2L LSTM (Andrychowicz et
al.) and the meta-learner LSTM (Ravi & Larochelle).

`lstm_rule` (the rules' shared base: hidden state, truncation, save / load), `l2l_lstm`,
`meta_lstm`, `log_and_sign` (their gradient preprocessing), `truncated_unroll` (the one
truncated-BPTT loop, also used by `agents.rl.backprop_warm_start`), `meta_training` (the run),
`meta_training_options`, `meta_checkpoints`, `meta_training_log`.
"""
