"""Time and memory of a local ray.init(num_cpus=2, num_gpus=2) (not a test; run by hand).

    /work/venv-engines/bin/python docs-drafts/engines-probes/ray_init_probe.py [nodash|dash]

"dash" needs ray[default]. RSS is the driver plus every process below it (gcs_server,
raylet, agents, idle workers), in MiB.
"""
import os, sys, time, json
t0 = time.monotonic()
import ray
t_import = time.monotonic() - t0

def tree_rss(root_pid):
    # RSS (MiB) of root_pid's descendants plus the ray processes (raylet, gcs, etc.)
    kids = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                st = open(f"/proc/{e}/stat").read().rsplit(")", 1)[1].split()
                kids.setdefault(int(st[1]), []).append(int(e))
            except OSError:
                pass
    seen, stack, tot, names = set(), [root_pid], 0, []
    while stack:
        p = stack.pop()
        if p in seen: continue
        seen.add(p); stack += kids.get(p, [])
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    tot += int(line.split()[1])
            names.append(open(f"/proc/{p}/comm").read().strip())
        except OSError:
            pass
    return tot / 1024, names

dash = sys.argv[1] == "dash" if len(sys.argv) > 1 else False
t0 = time.monotonic()
ctx = ray.init(num_cpus=2, num_gpus=2, include_dashboard=dash, log_to_driver=False)
t_init = time.monotonic() - t0
res = ray.cluster_resources()
time.sleep(3)
rss, names = tree_rss(os.getpid())
t0 = time.monotonic()
@ray.remote
def f(): return 1
ray.get(f.remote())
t_first = time.monotonic() - t0
rss2, names2 = tree_rss(os.getpid())
t0 = time.monotonic()
ray.shutdown()
t_shut = time.monotonic() - t0
print(json.dumps(dict(dashboard=dash, import_s=round(t_import,2), init_s=round(t_init,2), first_task_s=round(t_first,2),
      shutdown_s=round(t_shut,2), rss_mib_idle=round(rss), rss_mib_after_task=round(rss2), resources=res,
      procs=sorted(set(names2)))))
