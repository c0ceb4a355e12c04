"""Registers the twin's arm, camera and teleop config types (``type: sim``, ``type: expert``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from robolearn.cell import ArmConfig, CameraConfig, CellConfig, TeleopConfig


def _require_twin(twin: Any, what: str) -> Any:
    if twin is None:
        raise ValueError(f"a simulated {what} needs the cell's twin: pass twin=robolearn.sim.Twin(cell)")
    return twin


@ArmConfig.register("sim")
@dataclass
class SimArmConfig(ArmConfig):
    """The twin's arm: Cartesian impedance tracking of end-effector targets on MuJoCo physics.

    physics_hz: physics rate (≥ 500). stiffness_n_m / stiffness_nm_rad: Cartesian stiffness of the
    task-space controller; damping is critical for the arm's apparent mass at the tool.
    """

    physics_hz: float = 500.0
    stiffness_n_m: float = 2000.0
    stiffness_nm_rad: float = 150.0

    def __post_init__(self) -> None:
        if self.physics_hz < 500:
            raise ValueError(f"physics_hz must be at least 500, got {self.physics_hz}")

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        return _require_twin(twin, "arm").arm


@CameraConfig.register("sim")
@dataclass
class SimCameraConfig(CameraConfig):
    """A camera rendered by the twin with the configured pose and intrinsics (``fov_y_deg``, or pinhole
    ``fx_px, fy_px, cx_px, cy_px``)."""

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        return _require_twin(twin, "camera").cameras[self.name]


@TeleopConfig.register("expert")
@dataclass
class ExpertTeleopConfig(TeleopConfig):
    """The task's scripted expert, as a teleop device. noise_scale: std of Gaussian action noise
    as a fraction of the action range. seed: of that noise (None: a fresh one each run)."""

    human: ClassVar[bool] = False
    noise_scale: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.noise_scale >= 0.0:
            raise ValueError(f"noise_scale must be ≥ 0 (a standard deviation), got {self.noise_scale}")

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        from robolearn.sim.experts import make_expert

        return make_expert(_require_twin(twin, "expert"), noise_scale=self.noise_scale, seed=self.seed)


@TeleopConfig.register("random")
@dataclass
class RandomTeleopConfig(TeleopConfig):
    """Uniformly random actions (``robolearn.sim.experts.RandomOperator``): negatives for reward models.
    seed: of the actions (None: a fresh one each run)."""

    human: ClassVar[bool] = False
    seed: int | None = None

    def create(self, cell: CellConfig, twin: Any = None) -> Any:
        from robolearn.sim.experts import RandomOperator

        return RandomOperator(seed=self.seed)
