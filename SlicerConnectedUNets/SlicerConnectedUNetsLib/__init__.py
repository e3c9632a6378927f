"""Slicer-GUI-free parts of the Connected-UNets module.

``engine``: bundle and its network catalogue, cached model, background job (no Slicer, no VTK).
``dependencies``: what Slicer's Python needs and lacks, installed on first use (checking needs no
Slicer; installing runs inside Slicer). ``mrml_logic``: volume / ROI / segmentation nodes <-> numpy
(VTK + MRML classes that ``slicer-core`` also has). Import the submodules directly; this package
imports nothing so that ``engine`` and ``dependencies`` stay usable where VTK is absent.
"""
