"""Rotation conversions shared by the drivers, the SafetyFilter, the twin and the nodes (numpy only;
quaternions are ``(w, x, y, z)``)."""

from __future__ import annotations

import numpy as np


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle ``(3,)`` (axis times angle in rad) to a 3×3 rotation matrix (Rodrigues)."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    skew = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * skew + (1.0 - np.cos(angle)) * skew @ skew


def matrix_to_quat(matrix: np.ndarray) -> np.ndarray:
    """3×3 rotation matrix to a unit quaternion ``(w, x, y, z)`` with ``w >= 0``."""
    m = np.asarray(matrix, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0.0:
        s = 2.0 * np.sqrt(trace + 1.0)
        quat = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        quat = np.empty(4)
        quat[0] = (m[k, j] - m[j, k]) / s
        quat[1 + i] = 0.25 * s
        quat[1 + j] = (m[j, i] + m[i, j]) / s
        quat[1 + k] = (m[k, i] + m[i, k]) / s
    quat /= np.linalg.norm(quat)
    return quat if quat[0] >= 0.0 else -quat


def quat_to_matrix(quat_wxyz: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` to a 3×3 rotation matrix."""
    w, x, y, z = np.asarray(quat_wxyz, dtype=np.float64) / np.linalg.norm(quat_wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    """3×3 rotation matrix to axis-angle ``(3,)`` with angle in [0, π]."""
    w, x, y, z = matrix_to_quat(matrix)
    sin_half = float(np.linalg.norm([x, y, z]))
    if sin_half < 1e-12:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(sin_half, w)
    return np.array([x, y, z]) / sin_half * angle


def rpy_to_matrix(rpy_rad: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (fixed-axis x, y, z; ``R = Rz(yaw) Ry(pitch) Rx(roll)``) to a 3×3 matrix."""
    roll, pitch, yaw = np.asarray(rpy_rad, dtype=np.float64)
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def matrix_to_rpy(matrix: np.ndarray) -> np.ndarray:
    """Inverse of ``rpy_to_matrix``: ``(3,)`` roll, pitch, yaw in rad (pitch in [-π/2, π/2])."""
    m = np.asarray(matrix, dtype=np.float64)
    pitch = np.arcsin(np.clip(-m[2, 0], -1.0, 1.0))
    if abs(m[2, 0]) < 1.0 - 1e-9:
        roll = np.arctan2(m[2, 1], m[2, 2])
        yaw = np.arctan2(m[1, 0], m[0, 0])
    else:
        roll = 0.0
        yaw = np.arctan2(-m[0, 1], m[1, 1])
    return np.array([roll, pitch, yaw])


def orthonormalize(matrix: np.ndarray) -> np.ndarray:
    """The rotation nearest to ``matrix`` (removes drift from repeated composition)."""
    u, _, vt = np.linalg.svd(matrix)
    return u @ vt
