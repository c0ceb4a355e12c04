"""One episode of a store in the Rerun viewer (``rerun-sdk``), the way ``lerobot-dataset-visualize``
shows a LeRobot episode: every camera (its stored JPEG, no re-encoding), depth (metres, under the
camera's pinhole so the viewer can project it), and each dimension of state, action, object state,
reward, success and the other low-dimensional keys as scalar plots, on the timelines ``step`` (the
step in the episode) and ``time`` (the store's ``stamp_ns``).

Entity paths: ``cameras/<cam>`` (pinhole), ``cameras/<cam>/rgb``, ``cameras/<cam>/depth``,
``<key>/<dimension name>`` (state and action dimensions named as in a LeRobot export), ``<key>`` for
scalars. ``robolearn.ros.nodes.rerun_viewer`` logs a live graph to the same paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import DependencyError, DeviceError
from robolearn.store.codecs import kind_of
from robolearn.store.store import DemoStore


def require_rerun() -> Any:
    try:
        import rerun
    except ImportError as err:
        raise DependencyError("viewing in Rerun needs rerun-sdk: pip install 'robolearn[rerun]'") from err
    return rerun


def open_recording(name: str, out: str | Path | None = None, connect: str | None = None) -> Any:
    """A Rerun recording stream: saved to ``out`` (.rrd), sent to the viewer at ``connect`` (a
    ``rerun+http://...`` URL), or to a viewer spawned for it."""
    rr = require_rerun()
    recording = rr.RecordingStream("robolearn-" + "".join(c if c.isalnum() else "-" for c in name))
    if out is not None:
        recording.save(str(out))
    elif connect is not None:
        recording.connect_grpc(connect)
    else:
        try:
            recording.spawn()
        except Exception as err:
            raise DeviceError(f"cannot start the Rerun viewer here ({err}); save the recording with --out FILE.rrd "
                              "and open it with `rerun FILE.rrd`, or send it to a viewer with --connect URL") from err
    return recording


def log_cameras(recording: Any, cameras: dict[str, Any] | None) -> None:
    """Each calibrated camera's pinhole (static): ``cameras/<cam>``."""
    rr = require_rerun()
    for name, spec in (cameras or {}).items():
        intrinsics = spec.get("intrinsics")
        if intrinsics:
            recording.log(f"cameras/{name}", rr.Pinhole(
                focal_length=[intrinsics["fx_px"], intrinsics["fy_px"]],
                principal_point=[intrinsics["cx_px"], intrinsics["cy_px"]],
                width=intrinsics["width_px"], height=intrinsics["height_px"], camera_xyz=rr.ViewCoordinates.RDF),
                static=True)


def scalar_paths(key: str, shape: tuple[int, ...], cell: dict[str, Any] | None) -> list[str]:
    """Entity paths of a low-dimensional key's dimensions (``key`` itself for a scalar)."""
    from robolearn.store.convert_lerobot import dimension_names

    names = dimension_names(key, shape, cell)
    return [key] if names is None else [f"{key}/{name}" for name in names]


def view_episode_rerun(store: DemoStore, episode: int, out: str | Path | None = None,
                       connect: str | None = None) -> dict[str, Any]:
    """Log episode ``episode`` of ``store`` (see the module docstring); returns what was logged."""
    rr = require_rerun()
    recording = open_recording(f"{Path(store.path).stem}/episode_{episode}", out, connect)
    span = store.episode_slice(episode)
    steps = np.arange(span.stop - span.start)
    indexes = [rr.TimeColumn("step", sequence=steps)]
    if "stamp_ns" in store.keys:
        stamps = np.asarray(store.array("stamp_ns")[span], np.int64)
        indexes.append(rr.TimeColumn("time", timestamp=stamps.astype("datetime64[ns]")))
    log_cameras(recording, store.cameras)
    entities: list[str] = []
    for key in store.keys:
        kind = kind_of(key)
        if kind == "lowdim" and key != "stamp_ns":
            values = np.asarray(store.array(key)[span], np.float64).reshape(len(steps), -1)
            for i, path in enumerate(scalar_paths(key, tuple(store.array(key).shape[1:]), store.cell_config)):
                recording.send_columns(path, indexes=indexes, columns=rr.Scalars.columns(scalars=values[:, i]))
                entities.append(path)
        elif kind in ("rgb", "depth"):
            path = f"cameras/{key.split('_', 1)[1]}/{kind}"
            for t in steps:
                recording.set_time("step", sequence=int(t))
                if len(indexes) > 1:
                    recording.set_time("time", timestamp=np.datetime64(int(stamps[t]), "ns"))
                if kind == "rgb":
                    recording.log(path, rr.EncodedImage(contents=store.encoded_frame(key, span.start + int(t)),
                                                        media_type="image/jpeg"))
                else:
                    recording.log(path, rr.DepthImage(np.asarray(store.array(key)[span.start + int(t)]), meter=1.0))
            entities.append(path)
    recording.flush()
    return {"episode": episode, "steps": len(steps), "entities": entities, "out": str(out) if out else None,
            "viewer": connect or ("spawned" if out is None else None)}
