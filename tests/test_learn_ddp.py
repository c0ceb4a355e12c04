"""Offline training under torchrun: two CPU ranks (gloo) stay in sync through gradient averaging."""

import subprocess
import sys
import textwrap

import numpy as np
from safetensors.numpy import load_file

SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from robolearn.learn.api import init_distributed, train_offline
    from robolearn.learn.buffer import ReplayBuffer
    from robolearn.learn.iql import IQLConfig
    from robolearn.learn.sac import SACConfig

    rank, world = init_distributed()
    buf = ReplayBuffer({"state": ((3,), np.float32)}, 1, 100, seed=rank)
    rng = np.random.default_rng(rank)
    for _ in range(100):
        buf.add({"state": rng.normal(size=3)}, rng.uniform(-1, 1, 1), rng.normal(), {"state": rng.normal(size=3)}, False,
                mc_return=rng.normal())
    configs = {"iql": IQLConfig(hidden=(16, 16), batch_size=8),
               "calql": SACConfig(algo="calql", n_critics=2, hidden=(16, 16), batch_size=8, cql_alpha=5.0,
                                  cql_n_actions=2, max_target_backup=True, actor_q="min")}
    for name, cfg in configs.items():
        agent = train_offline(cfg, buf, 5, {"state": (3,)}, 1, device="cpu", seed=rank, progress=False)
        save_file({k: v.contiguous() for k, v in agent.state_dict().items()}, f"{sys.argv[1]}/{name}{rank}.safetensors")
''')


def test_torchrun_two_ranks_end_with_identical_weights(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("iql", "calql"):  # IQL's three optimizers; Cal-QL's critic, actor and temperature (SAC family)
        a, b = load_file(str(tmp_path / f"{name}0.safetensors")), load_file(str(tmp_path / f"{name}1.safetensors"))
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=f"{name}: {key}")
