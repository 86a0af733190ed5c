"""The command's filter of TensorFlow's start-up chatter on stderr (issue
15): the chatter goes, every other line comes through unchanged."""

import json
import subprocess
import sys
import textwrap

CHATTER = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796172126.318757   24244 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1796172126.319209   24244 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "I0000 00:00:1796172126.426161   24244 cpu_feature_guard.cc:227] This TensorFlow binary "
    "is optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
    "with the appropriate compiler flags.",
    "E0000 00:00:1796172126.5   24244 cuda_dnn.cc:8310] Unable to register cuDNN factory",
]
KEPT = [
    "W0000 00:00:1796172127.1   24244 op_kernel.cc:1857] OP_REQUIRES failed: a real warning",
    "E0000 00:00:1796172127.2   24244 cuda_driver.cc:10] a real error from the GPU driver",
    "Traceback (most recent call last):",
    "UserWarning: something the user should see",
    "Error: --seed -1: expected an integer >= 0",
]
# Writes every line to file descriptor 2, as TensorFlow's C++ logging does,
# inside the filter; then one line after it.
SCRIPT = textwrap.dedent('''
    import json, os, sys
    from keras_lottery.cli import chatter
    lines = json.loads(sys.argv[1])
    with chatter.filtered():
        for line in lines:
            os.write(2, (line + "\\n").encode())
        sys.stderr.write("through sys.stderr\\n")
    sys.stderr.write("after the filter\\n")
''')


def test_start_up_chatter_is_dropped_and_real_lines_come_through():
    mixed = [line for pair in zip(CHATTER, KEPT + [KEPT[0]]) for line in pair]
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(mixed)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines == [line for line in mixed if line not in CHATTER] + [
        "through sys.stderr", "after the filter"]
