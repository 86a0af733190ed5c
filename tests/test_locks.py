import json
import os
import subprocess
import sys
import time

import pytest

from keras_lottery import locks
from keras_lottery.errors import LotteryError


def test_lock_is_exclusive_and_says_who_holds_it(tmp_path):
    path = tmp_path / "run.lock"
    with locks.Lock(path, what="runs/x"):
        info = json.loads(path.read_text())
        assert info["pid"] == os.getpid() and info["host"]
        with pytest.raises(LotteryError) as error:
            locks.Lock(path, what="runs/x").acquire()
        message = str(error.value)
        assert message.startswith(f"runs/x is in use by process {os.getpid()} on ")
        assert "\n" not in message
        assert locks.holder(path)["alive"]
    assert not path.exists()
    assert locks.holder(path) is None


def test_a_dead_holders_lock_is_reclaimed(tmp_path):
    path = tmp_path / "run.lock"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    import socket

    path.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead),
                                "started": time.time()}))
    assert not locks.holder(path)["alive"]
    with locks.Lock(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_another_hosts_lock_is_alive_until_its_heartbeat_is_stale(tmp_path):
    path = tmp_path / "run.lock"
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 0}))
    assert locks.holder(path)["alive"]
    with pytest.raises(LotteryError, match="in use by process 1 on elsewhere"):
        locks.Lock(path).acquire()
    old = time.time() - locks.STALE_AFTER_SECONDS - 1
    os.utime(path, (old, old))
    assert not locks.holder(path)["alive"]
    with locks.Lock(path):
        assert json.loads(path.read_text())["host"] != "elsewhere"


def test_the_heartbeat_renews_the_files_time(tmp_path):
    path = tmp_path / "run.lock"
    with locks.Lock(path, heartbeat=0.05):
        old = time.time() - 100
        os.utime(path, (old, old))
        time.sleep(0.3)
        assert time.time() - os.stat(path).st_mtime < 5
