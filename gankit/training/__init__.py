"""Training a run: the loop and everything one step needs.

launch.py starts a run (new, resumed, or under torchrun) and loop.py trains it. Each step: real
batches (batches.py, held where placement.py says, prefetch.py for host memory), then step.py's
phases (D judged as d_calls.py says, losses.py's losses), then G's EMA (ema.py); the divergence
guard (divergence.py) and the stop signals (stop_signals.py) watch it; schedule.py says when to
log, draw, evaluate (periodic_eval.py) and checkpoint; state.py holds what a checkpoint saves;
health.py and overfitting_probe.py read the statistics; progress.py shows how far it has come;
distributed.py is one process among several; compute.py the device, precision and torch.compile.
"""
