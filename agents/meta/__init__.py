"""Meta-training by backpropagation through unrolled optimization: the L2L LSTM (Andrychowicz et
al.) and the meta-learner LSTM (Ravi & Larochelle)."""
