"""Guided policy search (Li & Malik, 2016/2017) over the coordinatewise optimizer MDP.

Mirror-descent GPS (Montgomery & Levine, 2016): each training instance's coordinates carry a
time-varying linear-Gaussian controller over a small per-coordinate state (coordinate_state.py),
initialised from per-instance tuned momentum (controllers.py); dynamics are fitted per time step
with a Gaussian-mixture prior (dynamics.py); the controllers take a KL-constrained LQR step towards
lower cost, constrained to the global policy's linearisation (lqr.py); the global policy, a small
MLP on coordinatewise observation rows (policy.py), is fitted to the controllers by
precision-weighted regression (policy_fit.py). `train_gps` (training.py) runs the loop.
"""
