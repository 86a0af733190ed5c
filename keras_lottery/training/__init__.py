"""Training a masked model: compile policy, the loop and what it writes.

Knows nothing of run directories: the loop writes to the run it is given.

- `compile`: the optimizer, LR schedule, loss and metrics every run uses;
- `optimizer`: `MomentumSGD` (TF1's momentum rule) and `LossScaleOptimizer`;
- `schedules`: the LR schedules as Keras schedule objects;
- `loop`: `fit` in segments that end at exact steps, and its `Plan`;
- `callbacks`: `IterationCheckpoint` and the step counting it rests on;
- `evaluation`: evaluation rows, TensorBoard summaries, hparams;
- `state`: saving and loading a full training state, checked.
"""
