"""Actor and learner in two processes over Zenoh; the learner is killed and restarted mid-run."""

import json
import multiprocessing as mp
import time

import numpy as np
import pytest
import torch

from robolearn.learn.actor_learner import actor_main, learner_main, pack, unpack
from robolearn.ros.zenoh_backend import free_endpoint, open_router

ALGO = {"algo": "rlpd", "n_critics": 2, "hidden": [32, 32], "batch_size": 32, "utd": 1, "start_steps": 0}


def test_pack_round_trip():
    header, arrays = unpack(pack({"stream": "a"}, {"x": np.arange(3, dtype=np.int64)}))
    assert header == {"stream": "a"} and arrays["x"].tolist() == [0, 1, 2]


def _wait_for(predicate, timeout_s):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_killed_learner_restarts_from_checkpoint_and_gets_every_buffered_transition(tmp_path):
    router_endpoint = free_endpoint()
    router = open_router(router_endpoint)
    al = {"router": router_endpoint, "prefix": f"test/{tmp_path.name}", "resend_s": 0.5, "push_weights_every": 5,
          "checkpoint_every_s": 1.0, "learner_timeout_s": 2.0, "start_transitions": 64}
    ctx = mp.get_context("spawn")
    ckpt = tmp_path / "learner"
    steps = 600
    learner = ctx.Process(target=learner_main, args=("gym:Pendulum-v1", ALGO, str(ckpt), al, steps, 120.0))
    actor = ctx.Process(target=actor_main, args=("gym:Pendulum-v1", ALGO, al, "a0", steps, 90.0, str(tmp_path / "actor.json"), 0.02))
    try:
        learner.start()
        actor.start()
        assert _wait_for(lambda: (ckpt / "config.json").exists() and json.loads((ckpt / "config.json").read_text())["updates"] > 5, 90)
        learner.kill()
        learner.join()
        committed_at_kill = sum(json.loads((ckpt / "config.json").read_text())["committed"].values())
        assert committed_at_kill < steps
        time.sleep(1.0)  # the actor keeps acting on its last weights and buffers
        result = tmp_path / "learner.json"
        learner = ctx.Process(target=learner_main, args=("gym:Pendulum-v1", ALGO, str(ckpt), al, steps, 120.0, str(result)))
        learner.start()
        actor.join(150)
        learner.join(150)
        assert actor.exitcode == 0 and learner.exitcode == 0
        a, lr = json.loads((tmp_path / "actor.json").read_text()), json.loads(result.read_text())
        assert a["flushed"] and a["unacked"] == 0 and a["sent"] == steps
        assert lr["committed"] == {a["stream"]: steps} and lr["online_size"] == steps
        assert a["weights_version"] > 0
    finally:
        for p in (learner, actor):
            if p.is_alive():
                p.kill()
        router.close()



def test_actor_holds_while_learner_is_away_and_resumes_when_it_returns(tmp_path):
    import threading

    import gymnasium as gym

    from robolearn.learn.actor_learner import Actor, ActorLearnerConfig, Learner
    from robolearn.learn.agents import config_from_dict, make_agent
    from robolearn.learn.buffer import MixedBuffer, ReplayBuffer

    endpoint = free_endpoint()
    router = open_router(endpoint)
    cfg = ActorLearnerConfig(router=endpoint, prefix=f"hold/{tmp_path.name}", learner_timeout_s=0.5,
                             hold_when_learner_away=True, start_transitions=10_000, checkpoint_every_s=0.2)
    algo = config_from_dict("rlpd", {k: v for k, v in ALGO.items() if k != "algo"})

    def new_learner():
        spaces = {"state": ((3,), np.float32)}
        buffer = MixedBuffer(ReplayBuffer(spaces, 1, 10), ReplayBuffer(spaces, 1, 1000), 0.5)
        return Learner(make_agent(algo, {"state": (3,)}, 1), buffer, tmp_path / "ckpt", cfg)

    actor = Actor(gym.make("Pendulum-v1"), make_agent(algo, {"state": (3,)}, 1), cfg)
    try:
        learner = new_learner()
        time.sleep(0.5)
        learner.push_weights()
        assert _wait_for(lambda: actor.last_heard > 0, 5)
        learner.checkpoint()
        learner.close()
        # More steps than fit in learner_timeout_s (10 ms each), so the actor must notice and hold.
        steps = 200
        thread = threading.Thread(target=actor.run, args=(steps, 0.01))
        thread.start()
        time.sleep(1.5)
        held_at = actor.seq
        assert held_at < steps
        time.sleep(0.5)
        assert actor.seq == held_at  # holding: no env steps while the learner is away
        learner = new_learner()
        stop = threading.Event()
        loop = threading.Thread(target=lambda: [learner.step() for _ in iter(stop.is_set, True)])
        loop.start()
        thread.join(30)
        assert actor.seq == steps
        assert actor.flush(10)
        stop.set()
        loop.join()
        assert learner.total_committed() == steps
        learner.close()
    finally:
        actor.close()
        router.close()


def _learner(tmp_path, endpoint, store_demos=0, **algo):
    from robolearn.learn.actor_learner import ActorLearnerConfig, Learner
    from robolearn.learn.agents import config_from_dict, make_agent
    from robolearn.learn.buffer import MixedBuffer, ReplayBuffer

    cfg = config_from_dict("rlpd", {**{k: v for k, v in ALGO.items() if k != "algo"}, **algo})
    spaces = {"state": ((3,), np.float32)}
    demo = ReplayBuffer(spaces, 1, 100)
    for _ in range(store_demos):  # the store's demonstrations, loaded before the learner starts
        demo.add({"state": np.ones(3)}, [0.5], 0.0, {"state": np.ones(3)}, False, mc_return=0.0)
    buffer = MixedBuffer(demo, ReplayBuffer(spaces, 1, 1000), 0.5, cfg.gamma, cfg.r_neg)
    al = ActorLearnerConfig(router=endpoint, prefix=f"unit/{tmp_path.name}", start_transitions=4, checkpoint_every_s=60)
    return Learner(make_agent(cfg, {"state": (3,)}, 1), buffer, tmp_path / "ckpt", al)


def _message(stream, seqs, rewards, interventions, ends, successes):
    from robolearn.learn.actor_learner import _concat, _transition_arrays

    items = [_transition_arrays(s, {"state": np.full(3, s, np.float32)}, np.array([0.1 * s]), r, {"state": np.zeros(3)},
                                e and su, i, e)
             for s, r, i, e, su in zip(seqs, rewards, interventions, ends, successes)]
    return pack({"stream": stream}, _concat(items))


def test_learner_takes_each_transition_once_in_order_and_writes_return_to_go(tmp_path):
    endpoint = free_endpoint()
    router = open_router(endpoint)
    learner = _learner(tmp_path, endpoint, gamma=0.5)
    try:
        learner.inbox.put(_message("s", [0, 1], [0.0, 0.0], [False, True], [False, False], [False, False]))
        learner.inbox.put(_message("s", [1, 3], [0.0, 9.0], [True, False], [False, False], [False, False]))  # resend + gap
        learner.inbox.put(_message("s", [2], [1.0], [False], [True], [True]))
        assert learner.receive() == 3 and learner.expected == {"s": 3}
        online, demo = learner.buffer.online, learner.buffer.demo
        assert online.obs["state"][:3, 0].tolist() == [0.0, 1.0, 2.0]
        assert online.mc_return[:3].tolist() == pytest.approx([0.25, 0.5, 1.0])
        assert len(demo) == 1 and demo.action[0, 0] == pytest.approx(0.1) and demo.mc_return[0] == pytest.approx(0.5)
    finally:
        learner.close()
        router.close()


def test_wsrl_learner_waits_for_the_warmup_transitions(tmp_path):
    endpoint = free_endpoint()
    router = open_router(endpoint)
    learner = _learner(tmp_path, endpoint, warmup_steps=6)
    try:
        learner.inbox.put(_message("w", range(5), [0.0] * 5, [False] * 5, [False] * 5, [False] * 5))
        learner.step()
        assert len(learner.buffer.online) == 5 and learner.updates == 0  # past start_transitions=4, inside warm-up
        learner.inbox.put(_message("w", [5], [0.0], [False], [False], [False]))
        learner.step()
        assert learner.updates == 1
    finally:
        learner.close()
        router.close()


def test_interventions_stay_in_the_demo_buffer_across_two_learner_restarts(tmp_path):
    endpoint = free_endpoint()
    router = open_router(endpoint)
    try:
        learner = _learner(tmp_path, endpoint, store_demos=5)
        learner.inbox.put(_message("s", [0, 1, 2], [0.0] * 3, [False, True, False], [False] * 3, [False] * 3))
        learner.receive()
        assert len(learner.buffer.demo) == 6
        learner.checkpoint()
        learner.close()
        for restart in range(2):  # no new intervention after the first restart: the demo buffer must still be saved
            learner = _learner(tmp_path, endpoint, store_demos=5)
            assert len(learner.buffer.demo) == 6, f"restart {restart + 1}"
            assert learner.store_demos == 5 and learner.buffer.demo.action[5, 0] == pytest.approx(0.1)
            learner.checkpoint()
            learner.close()
    finally:
        router.close()


def test_learner_keeps_the_update_to_data_ratio(tmp_path):
    endpoint = free_endpoint()
    router = open_router(endpoint)
    learner = _learner(tmp_path, endpoint, utd=3)
    critic_steps = []
    critic_step = learner.agent.critic_step
    learner.agent.critic_step = lambda batch: critic_steps.append(1) or critic_step(batch)
    try:
        learner.inbox.put(_message("u", range(10), [0.0] * 10, [False] * 10, [False] * 10, [False] * 10))
        for _ in range(20):
            learner.step()
        # start_transitions 4: one cycle (3 critic steps + 1 actor step) for each of transitions 4..10
        assert learner.updates == 7 and len(critic_steps) == 21
        learner.inbox.put(_message("u", range(10, 13), [0.0] * 3, [False] * 3, [False] * 3, [False] * 3))
        for _ in range(10):
            learner.step()
        assert learner.updates == 10 and len(critic_steps) == 30
    finally:
        learner.close()
        router.close()


def test_learner_drops_non_finite_transitions_with_a_counted_warning(tmp_path, caplog):
    from robolearn.learn.buffer import NO_FLOOR

    endpoint = free_endpoint()
    router = open_router(endpoint)
    learner = _learner(tmp_path, endpoint, gamma=0.5)
    try:
        learner.inbox.put(_message("n", [0, 1, 2, 3], [1.0, float("nan"), 1.0, 2.0], [False] * 4,
                                   [False, False, False, True], [False] * 4))
        with caplog.at_level("WARNING", logger="robolearn.learn.actor_learner"):
            assert learner.receive() == 4
        assert learner.expected == {"n": 4} and learner.dropped == 1 and len(learner.buffer.online) == 3
        assert "reward is nan" in caplog.text and "1 dropped so far" in caplog.text
        online = learner.buffer.online
        # step 0's return-to-go needs the dropped reward: no floor; steps 2, 3: 1 + 0.5·2 = 2, 2
        assert online.mc_return[0] == NO_FLOOR and online.mc_return[1:3].tolist() == pytest.approx([2.0, 2.0])
    finally:
        learner.close()
        router.close()


def test_an_open_episode_gets_its_return_to_go_after_a_learner_restart(tmp_path):
    from robolearn.learn.buffer import NO_FLOOR

    endpoint = free_endpoint()
    router = open_router(endpoint)
    try:
        learner = _learner(tmp_path, endpoint, gamma=0.5)
        learner.inbox.put(_message("o", [0, 1], [1.0, 2.0], [False, True], [False, False], [False, False]))
        learner.receive()
        learner.checkpoint()
        learner.close()
        learner = _learner(tmp_path, endpoint, gamma=0.5)
        assert learner.buffer.online.mc_return[0] == NO_FLOOR  # still open: no floor, not a floor of 0
        learner.inbox.put(_message("o", [2], [4.0], [False], [True], [True]))
        learner.receive()
        # 1 + 0.5·(2 + 0.5·4) = 3, 2 + 0.5·4 = 4, 4
        assert learner.buffer.online.mc_return[:3].tolist() == pytest.approx([3.0, 4.0, 4.0])
        assert learner.buffer.demo.mc_return[0] == pytest.approx(4.0)
        learner.close()
    finally:
        router.close()


def test_actor_refuses_pushed_weights_that_do_not_fit(tmp_path):
    import gymnasium as gym

    from robolearn.learn.actor_learner import Actor, WeightsMismatchError
    from robolearn.learn.agents import config_from_dict, make_agent

    endpoint = free_endpoint()
    router = open_router(endpoint)
    learner = _learner(tmp_path, endpoint, hidden=[16, 16])
    algo = config_from_dict("rlpd", {k: v for k, v in ALGO.items() if k != "algo"})
    actor = Actor(gym.make("Pendulum-v1"), make_agent(algo, {"state": (3,)}, 1), learner.cfg)
    before = {k: v.clone() for k, v in actor.agent.state_dict().items()}
    try:
        assert _wait_for(lambda: learner.push_weights() or actor.weights_error, 10)
        assert "wrong shape" in actor.weights_error and "actor.trunk.0.weight (16, 3) vs (32, 3)" in actor.weights_error
        assert all(torch.equal(before[k], v) for k, v in actor.agent.state_dict().items())  # kept its weights
        with pytest.raises(WeightsMismatchError, match="same --algo, --set and --obs"):
            actor.run(5)
    finally:
        actor.close()
        learner.close()
        router.close()


def test_checkpoints_take_at_most_their_share_of_the_learners_time(tmp_path):
    """A replay buffer that takes long to save (pixels) stretches the checkpoint interval, so the
    learner keeps training; what is not committed yet stays with the actor."""
    endpoint = free_endpoint()
    router = open_router(endpoint)
    learner = _learner(tmp_path, endpoint)
    learner.cfg.checkpoint_every_s, learner.cfg.checkpoint_max_time_fraction = 0.01, 0.1
    try:
        learner.inbox.put(_message("s", list(range(20)), [0.0] * 20, [False] * 20, [False] * 20, [False] * 20))
        learner.receive()
        learner.checkpoint()
        assert learner.checkpoint_s > 0 and learner.committed == {"s": 20}
        time.sleep(0.02)
        interval_s = learner.checkpoint_s / 0.1
        assert learner.checkpoint_due() == (interval_s < 0.02)
        learner._last_ckpt -= interval_s
        assert learner.checkpoint_due()
    finally:
        learner.close()
        router.close()
