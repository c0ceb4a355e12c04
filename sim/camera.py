"""The twin's cameras: color and metric depth rendered headless in one pass.

Rendering goes through MuJoCo's OpenGL renderer on EGL or OSMesa (``MUJOCO_GL``). Each frame is one
``mjr_render`` and one ``mjr_readPixels`` that reads color and depth together; shadows, reflections
and the skybox are off by default (5–10× faster on a CPU renderer, ARCHITECTURE.md, "Twin rendering").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mujoco
import numpy as np

from robolearn.cell import CameraConfig
from robolearn.interfaces import CameraIntrinsics, Frame

if TYPE_CHECKING:
    from robolearn.sim.twin import Twin

EXPENSIVE_EFFECTS = (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION, mujoco.mjtRndFlag.mjRND_SKYBOX)


class RenderContext:
    """One offscreen GL context, MuJoCo render context and scene shared by a twin's cameras."""

    def __init__(self, model: mujoco.MjModel, effects: bool = False):
        self.model = model
        width, height = model.vis.global_.offwidth, model.vis.global_.offheight
        self.gl = mujoco.GLContext(width, height)
        self.gl.make_current()
        self.scene = mujoco.MjvScene(model, maxgeom=1000)
        for flag in EXPENSIVE_EFFECTS:
            self.scene.flags[flag] = effects
        self.context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self.context)
        self.option = mujoco.MjvOption()
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        extent = model.stat.extent
        self.near_m = model.vis.map.znear * extent
        self.far_m = model.vis.map.zfar * extent

    def render(self, data: mujoco.MjData, camera_id: int, width: int, height: int, depth: bool):
        """``(color (H, W, 3) uint8, depth_m (H, W) float32 or None)``, top row first."""
        self.gl.make_current()
        self.camera.fixedcamid = camera_id
        mujoco.mjv_updateScene(self.model, data, self.option, None, self.camera, mujoco.mjtCatBit.mjCAT_ALL, self.scene)
        viewport = mujoco.MjrRect(0, 0, width, height)
        mujoco.mjr_render(viewport, self.scene, self.context)
        color = np.empty((height, width, 3), dtype=np.uint8)
        depth_buffer = np.empty((height, width), dtype=np.float32) if depth else None
        mujoco.mjr_readPixels(color, depth_buffer, viewport, self.context)
        color = np.flipud(color)
        if depth_buffer is None:
            return np.ascontiguousarray(color), None
        # OpenGL depth buffer in [0, 1] → distance along the optical axis in metres.
        z = np.flipud(depth_buffer).astype(np.float64)
        depth_m = self.near_m / (1.0 - z * (1.0 - self.near_m / self.far_m))
        return np.ascontiguousarray(color), depth_m.astype(np.float32)

    def close(self) -> None:
        self.context.free()
        self.gl.free()


class SimCamera:
    """Implements ``robolearn.interfaces.Camera``: renders the twin's current state on ``read``."""

    def __init__(self, twin: Twin, config: CameraConfig):
        self.twin = twin
        self.config = config
        self.name = config.name
        self.camera_id = twin.model.camera(config.name).id
        self._intrinsics = config.intrinsics()
        self._frame_index = 0

    @property
    def serial(self) -> str:
        return f"sim:{self.twin.cell.name}:{self.name}"

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return self._intrinsics

    def connect(self) -> None:
        """Rendering contexts are created on the first ``read``."""

    def read(self) -> Frame:
        """Render the twin as it is now (time does not advance)."""
        context = _render_context(self.twin)
        color, depth_m = context.render(
            self.twin.data, self.camera_id, self.config.width_px, self.config.height_px, self.config.depth
        )
        self._frame_index += 1
        return Frame(color=color, depth_m=depth_m, stamp_ns=self.twin.time_ns, frame_index=self._frame_index)

    def pose_world(self) -> tuple[np.ndarray, np.ndarray]:
        """``(pos_m (3,), R (3, 3))`` of the optical frame (x right, y down, z forward) in the cell frame."""
        data = self.twin.data
        mujoco.mj_forward(self.twin.model, data)
        rotation = data.cam_xmat[self.camera_id].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        return data.cam_xpos[self.camera_id].copy(), rotation

    def disconnect(self) -> None:
        context = getattr(self.twin, "_render_context", None)
        if context is not None:
            context.close()
            self.twin._render_context = None


def _render_context(twin: Twin) -> RenderContext:
    context = getattr(twin, "_render_context", None)
    if context is None:
        context = RenderContext(twin.model)
        twin._render_context = context
    return context
