"""GRAM in plain PyTorch: network, loss, sampling, checkpoints, training and evaluation.

Receives token arrays from tasks/ and hands on trained checkpoints and sampled trajectories to
server/. Runs on CPU and GPU; fused GPU ops are reached only through kernels/.
"""
