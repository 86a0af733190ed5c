"""Why rewinding works: analyses of runs.

- `stability(parent, iteration=k, ...)`: instability analysis (linear mode
  connectivity, Frankle, Dziugaite, Roy & Carbin, ICML 2020): copies of a
  run trained from k with different seeds, the test error along the
  straight line between them, and its barrier (`instability` module);
- `mask_overlap(runs)`: the Jaccard index and kept fraction of every pair
  of runs' masks, per layer and total (`overlap`);
- `layer_densities(runs)`: per-layer density of runs' masks (`masks`);
- `figures`: error against α, overlap heatmaps, per-layer density bars.

Every function takes runs, run directories, folders of runs and study files
(`sources`). Modules: `sources` (what the tools take), `interpolation`
(points between two networks, batch-norm re-estimation), `connectivity`
(errors along the path), `instability` (the analysis), `masks`, `overlap`,
`figures`.
"""

from keras_lottery.analysis import figures  # noqa: F401  (matplotlib loads on first figure)
from keras_lottery.analysis.masks import layer_densities
from keras_lottery.analysis.overlap import MaskOverlap
from keras_lottery.analysis.overlap import mask_overlap
from keras_lottery.analysis.instability import StabilityResult
from keras_lottery.analysis.instability import stability

__all__ = ["MaskOverlap", "StabilityResult", "layer_densities", "mask_overlap",
           "stability"]
