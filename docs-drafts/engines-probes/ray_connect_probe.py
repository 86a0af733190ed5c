"""How ray.init(address=...) fails when no Ray cluster is there (not a test; run by hand).

    /work/venv-engines/bin/python docs-drafts/engines-probes/ray_connect_probe.py refused|auto|preflight

Only loopback addresses are used. "refused" takes minutes with Ray's defaults; try it
with RAY_gcs_server_port_wait_time_s=1 (about 41 s) and also
RAY_gcs_rpc_server_connect_timeout_s=1 (about 33 s). Do not lower
RAY_gcs_rpc_server_reconnect_timeout_s below ~30: the C++ client then aborts the process.
"""
import json
import socket
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def preflight(address, timeout=3.0):
    """A TCP connect before ray.init: one line, in milliseconds (refused) or `timeout` (no route)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
        return None
    except OSError as exc:
        return f"cannot reach Ray at {address}: {exc.strerror or exc}"


def main(mode):
    address = {"refused": f"127.0.0.1:{free_port()}", "auto": "auto",
               "preflight": f"127.0.0.1:{free_port()}"}[mode]
    t0 = time.monotonic()
    if mode == "preflight":
        print(json.dumps(dict(mode=mode, error=preflight(address), seconds=round(time.monotonic() - t0, 3))))
        return
    import ray
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        result = dict(ok=True)
        ray.shutdown()
    except Exception as exc:  # noqa: BLE001
        result = dict(ok=False, error=type(exc).__name__, first_line=str(exc).splitlines()[0][:200])
    result.update(mode=mode, address=address, seconds=round(time.monotonic() - t0, 2))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "auto")
