"""SequenceDataset: windows of observation history and action chunks with edge padding,
normalization from the statistics stored in the store, images decoded in DataLoader workers."""

from __future__ import annotations

import pickle
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest
import torch
import zarr

from robolearn.store import DemoStore
from robolearn.store.dataset import FrameReader, SequenceDataset, make_dataloader
from robolearn.store.shared_frames import FramePool, SharedFrames

H, W = 16, 24
LENGTHS = (5, 3, 6)


def uniform_frames(values: np.ndarray) -> np.ndarray:
    """One flat grey frame per value: JPEG keeps them to within a level or two."""
    return np.broadcast_to(values.astype(np.uint8)[:, None, None, None], (len(values), H, W, 3)).copy()


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    """Global step i has state i, action 1000 + i, front frame 4 i, wrist frame 250 − 4 i, depth (i + 1) cm."""
    path = tmp_path_factory.mktemp("dataset") / "s.zarr"
    store = DemoStore.create(path)
    start = 0
    for n in LENGTHS:
        i = np.arange(start, start + n)
        store.append_episode({
            "state": np.stack([i, 2 * i], -1).astype(np.float32), "action": (1000 + i)[:, None].astype(np.float32),
            "rgb_front": uniform_frames(4 * i), "rgb_wrist": uniform_frames(250 - 4 * i),
            "depth_front": np.broadcast_to(((i + 1) * 0.01).astype(np.float32)[:, None, None], (n, H, W)).copy(),
        }, {"task": "t", "source": "expert"})
        start += n
    store.stats()
    return path


def grey(frames: torch.Tensor) -> np.ndarray:
    """The level of flat ``(..., 3, H, W)`` frames."""
    return frames.float().mean(dim=(-3, -2, -1)).round().numpy().astype(int)


def test_windows_never_span_a_gap_of_dropped_steps(tmp_path):
    """Rows 0–3 and 4–7 of an episode were recorded with two control steps dropped between them:
    the window is padded at the gap as at an episode edge."""
    with DemoStore.create(tmp_path / "gap.zarr") as store:
        i = np.arange(8)
        store.append_episode({"state": i[:, None].astype(np.float32), "action": (100 + i)[:, None].astype(np.float32)},
                             {"source": "teleop", "gaps": [[4, 2]]})
    dataset = SequenceDataset(store.path, ["state"], n_obs_steps=2, horizon=3, normalization=None)
    assert len(dataset) == 8
    before, after = dataset[3], dataset[4]
    np.testing.assert_array_equal(before["action"][:, 0].numpy(), [103, 103, 103])
    np.testing.assert_array_equal(before["action_is_pad"].numpy(), [False, True, True])
    np.testing.assert_array_equal(after["state"][:, 0].numpy(), [4, 4])
    np.testing.assert_array_equal(dataset[5]["state"][:, 0].numpy(), [4, 5])
    np.testing.assert_array_equal(dataset[2]["action"][:, 0].numpy(), [102, 103, 103])


def test_windows_pad_at_episode_edges(store_path):
    dataset = SequenceDataset(store_path, ["state", "rgb_front", "depth_front"], n_obs_steps=3, horizon=4,
                              normalization=None)
    assert len(dataset) == sum(LENGTHS)
    first_of_second = dataset[5]
    np.testing.assert_array_equal(first_of_second["state"][:, 0].numpy(), [5, 5, 5])
    np.testing.assert_array_equal(first_of_second["action"][:, 0].numpy(), [1005, 1006, 1007, 1007])
    np.testing.assert_array_equal(first_of_second["action_is_pad"].numpy(), [False, False, False, True])
    last_of_first = dataset[4]
    np.testing.assert_array_equal(last_of_first["state"][:, 1].numpy(), [4, 6, 8])
    np.testing.assert_array_equal(last_of_first["action"][:, 0].numpy(), [1004] * 4)
    np.testing.assert_array_equal(last_of_first["action_is_pad"].numpy(), [False, True, True, True])
    assert first_of_second["rgb_front"].shape == (3, 3, H, W) and first_of_second["rgb_front"].dtype == torch.uint8
    assert np.abs(grey(last_of_first["rgb_front"]) - [8, 12, 16]).max() <= 2
    np.testing.assert_allclose(last_of_first["depth_front"][:, 0, 0].numpy(), [0.03, 0.04, 0.05], atol=1e-6)
    inside = dataset[10]
    np.testing.assert_array_equal(inside["state"][:, 0].numpy(), [8, 9, 10])
    np.testing.assert_array_equal(inside["action"][:, 0].numpy(), [1010, 1011, 1012, 1013])
    assert not inside["action_is_pad"].any()
    np.testing.assert_array_equal(dataset[11]["action_is_pad"].numpy(), [False, False, False, True])

    batch = dataset[[4, 5, 10]]
    assert batch["state"].shape == (3, 3, 2) and batch["action"].shape == (3, 4, 1)
    assert batch["rgb_front"].shape == (3, 3, 3, H, W) and batch["depth_front"].shape == (3, 3, H, W)
    np.testing.assert_array_equal(batch["action"][1].numpy(), first_of_second["action"].numpy())


def test_episode_subset(store_path):
    dataset = SequenceDataset(store_path, ["state"], n_obs_steps=2, horizon=2, episodes=[2], normalization=None)
    assert len(dataset) == LENGTHS[2]
    np.testing.assert_array_equal(dataset[0]["state"][:, 0].numpy(), [8, 8])


def test_normalization_uses_the_stored_statistics(store_path):
    stored = zarr.open_group(str(store_path), mode="r")["meta"].attrs["stats"]
    assert stored["n_steps"] == sum(LENGTHS)
    dataset = SequenceDataset(store_path, ["state"], n_obs_steps=1, horizon=1, normalization="mean_std")
    np.testing.assert_allclose(dataset.stats["state"]["mean"], stored["keys"]["state"]["mean"], rtol=1e-6)
    states = np.stack([dataset[i]["state"][0].numpy() for i in range(len(dataset))])
    np.testing.assert_allclose(states.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(states.std(0), 1.0, atol=1e-5)
    action = dataset[3]["action"]
    np.testing.assert_allclose(dataset.unnormalize_action(action).numpy(), [[1003.0]], rtol=1e-6)
    np.testing.assert_allclose(dataset.unnormalize_action(action.numpy()), [[1003.0]], rtol=1e-6)

    min_max = SequenceDataset(store_path, ["state"], n_obs_steps=1, horizon=1, normalization="min_max")
    actions = np.stack([min_max[i]["action"][0].numpy() for i in range(len(min_max))])
    assert actions.min() == pytest.approx(-1.0) and actions.max() == pytest.approx(1.0)
    np.testing.assert_allclose(min_max.unnormalize_action(torch.tensor([[1.0]])).numpy(), [[1000 + sum(LENGTHS) - 1]])


def test_images_are_decoded_in_the_worker_processes(store_path):
    dataset = SequenceDataset(store_path, ["state", "rgb_front", "rgb_wrist"], n_obs_steps=2, horizon=3,
                              normalization=None)
    loader = make_dataloader(dataset, batch_size=4, num_workers=2, shuffle=False, drop_last=False)
    batches = list(loader)
    assert dataset._reader is None, "the main process decoded no frame: the workers did"
    assert [len(b["state"]) for b in batches] == [4, 4, 4, 2]
    state = torch.cat([b["state"] for b in batches])
    front, wrist = torch.cat([b["rgb_front"] for b in batches]), torch.cat([b["rgb_wrist"] for b in batches])
    assert front.shape == (14, 2, 3, H, W)
    np.testing.assert_array_equal(state[:, -1, 0].numpy(), np.arange(14))
    assert np.abs(grey(front) - 4 * state[..., 0].numpy()).max() <= 2
    assert np.abs(grey(wrist) - (250 - 4 * state[..., 0].numpy())).max() <= 2

    shuffled = make_dataloader(dataset, batch_size=4, num_workers=2, seed=0)
    anchors = torch.cat([b["state"][:, -1, 0] for b in shuffled]).numpy()
    assert len(anchors) == 12 and len(set(anchors.tolist())) == 12 and not (np.diff(anchors) > 0).all()


def test_frame_reader_matches_zarr(store_path):
    reader = FrameReader(store_path, ["rgb_front", "depth_front"])
    store = DemoStore.open(store_path)
    for index in (0, 7, 13):
        np.testing.assert_array_equal(reader.read("rgb_front", index), store.array("rgb_front")[index])
        np.testing.assert_array_equal(reader.read("depth_front", index), store.array("depth_front")[index])
        out = np.empty((H, W, 3), np.uint8)
        assert reader.read("rgb_front", index, out=out) is out


def test_bad_arguments_name_the_problem(store_path):
    with pytest.raises(KeyError, match=r"has no \['rgb_side'\]; it has"):
        SequenceDataset(store_path, ["state", "rgb_side"])
    with pytest.raises(ValueError, match="n_obs_steps and horizon must be ≥ 1"):
        SequenceDataset(store_path, ["state"], n_obs_steps=0)
    with pytest.raises(ValueError, match="normalization must be one of"):
        SequenceDataset(store_path, ["state"], normalization="zscore")


def test_worker_buffers_are_reused_only_once_released(store_path):
    pool = FramePool()
    buffer, frames = pool.take((2, H, W, 3), torch.uint8)
    frames[:] = 7
    received = pickle.loads(ForkingPickler.dumps(SharedFrames(buffer, (2, H, W, 3), torch.uint8, (0, 3, 1, 2))))
    assert received.shape == (2, 3, H, W) and int(received.max()) == 7
    view = received[1:]
    del received
    assert pool.take((2, H, W, 3), torch.uint8)[0] is not buffer, "a view of the batch still holds the buffer"
    del view
    assert pool.take((2, H, W, 3), torch.uint8)[0] is buffer, "a released buffer is reused"


def test_batches_held_by_the_trainer_are_never_overwritten(store_path):
    dataset = SequenceDataset(store_path, ["rgb_front", "depth_front"], n_obs_steps=2, horizon=1, normalization=None)
    plan = [list(np.random.default_rng(i).choice(len(dataset), 4, replace=False)) for i in range(16)]
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, sampler=plan, num_workers=1)
    held, decoded = [], 0
    for i, batch in enumerate(loader):
        if i < 3:
            held.append(batch)
        decoded += 1
    assert decoded == 16
    for indices, batch in zip(plan, held):
        expected = dataset[indices]
        np.testing.assert_array_equal(batch["rgb_front"].numpy(), expected["rgb_front"].numpy())
        np.testing.assert_array_equal(batch["depth_front"].numpy(), expected["depth_front"].numpy())
