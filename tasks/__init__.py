"""Problem families of the gym: classic objectives and meta-learning inner loops.

Each family depends only on `l2o_gym`'s protocols (`TaskFamily`, `Problem`).
"""
