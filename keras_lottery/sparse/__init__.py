"""Sparse networks: masked layers and how their masks are chosen.

The bottom layer of the package; it knows nothing of runs or training.

- `masking`: what makes a Keras layer masked (kernel × mask);
- `layers`: the masked twin of every Keras kernel layer (`MaskedConv2D`,
  `MaskedDense`, ...), from one table;
- `conversion`: `masked(model)` and `strip(model)` for your own models;
- `pruning`: a model's masks, read, set and counted (`get_masks`,
  `set_masks`, `density`);
- `ranking`: the pure rankings (`magnitude_masks`, `random_masks`);
- `pruners`: the pruning criteria, registered by name (`prune`,
  `register_pruner`), and the checks every pruner's masks pass;
- `structured`: L1-norm filter pruning (`prune_filters`, the pruner
  "l1-filters"), with the paper's configurations in `filter_configs`;
- `channels`: which layers read a layer's output channels (the groups a
  filter is removed with);
- `thinning`: `thin(model)`, the pruned filters physically removed;
- `report`: per-layer densities, filters and FLOPs (`sparsity_report`);
- `flops`: multiply-accumulates of convolutions and dense layers;
- `slots`: an optimizer's slot variables of a kernel (zeroed with it).
"""
