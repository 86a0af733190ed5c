"""Results of finished runs: tables and figures.

- `tables`: one row per run, or grouped over seeds (`keras_lottery.report`);
- `figures`: accuracy against density, training curves, per-layer
  densities (`keras_lottery.plot`; matplotlib loads with the first figure).
"""
