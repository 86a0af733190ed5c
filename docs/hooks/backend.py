"""Build hook: the site builds with Keras's numpy backend.

The API pages read some docstrings from the imported package (the derived
procedures are made from the method table at import time), and importing it
imports Keras. The numpy backend ships with Keras, so `pip install '.[docs]'`
builds the site without TensorFlow, JAX or PyTorch; set here, when mkdocs
loads its hooks, before anything imports Keras.
"""

import os

os.environ["KERAS_BACKEND"] = "numpy"
