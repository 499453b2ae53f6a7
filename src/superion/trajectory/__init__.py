"""Trajectories: the H5MD format MD writes (:mod:`.h5md`), the readers analysis uses
(:mod:`.readers`: every format, in-memory arrays included, behind one interface;
:func:`open_trajectory` applies the frame interval), and extended-XYZ export (:mod:`.export`).

Nothing here knows about integrators: the MD engine hands over plain arrays (positions Å,
cell Å, velocities Å/fs), so a batched/GPU engine reuses the same storage.
"""

from superion.trajectory.export import ExportResult, export_extxyz
from superion.trajectory.h5md import H5TrajectoryReader, H5TrajectoryWriter
from superion.trajectory.readers import ArrayTrajectory, AseTrajectoryReader, TrajectoryReader, open_trajectory

__all__ = ["ArrayTrajectory", "AseTrajectoryReader", "ExportResult", "H5TrajectoryReader", "H5TrajectoryWriter",
           "TrajectoryReader", "export_extxyz", "open_trajectory"]
