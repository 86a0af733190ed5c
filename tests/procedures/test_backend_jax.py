"""Every procedure, resuming, a TensorFlow parent rewound, any optimizer, bf16
and a study on Keras's JAX backend (tests/backend_checks.py), in one
subprocess; skipped where jax is not installed."""

from backend_checks import made  # noqa: F401 (the module's fixture)
from backend_checks import test_a_tensorflow_parent_rewinds_here_and_these_runs_load_on_tensorflow  # noqa: F401
from backend_checks import test_a_tiny_study_runs_on_the_backend  # noqa: F401
from backend_checks import test_adamw_with_cosine_decay_rewinds_here  # noqa: F401
from backend_checks import test_an_interrupted_run_resumes_to_the_bits_of_an_uninterrupted_one  # noqa: F401
from backend_checks import test_bf16_convolutions_and_batch_norm_train_and_rewind  # noqa: F401
from backend_checks import test_every_procedure_runs_and_records_its_backend  # noqa: F401
from backend_checks import test_progress_lines_and_tensorboard_logs  # noqa: F401
from backend_checks import test_what_the_backend_lacks_is_one_line  # noqa: F401

BACKEND = "jax"
