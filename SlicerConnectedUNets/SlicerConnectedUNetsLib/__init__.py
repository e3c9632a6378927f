"""Slicer-GUI-free parts of the Connected-UNets module.

``engine``: bundle, dependencies, cached model, per-ROI masks, background job (no Slicer, no VTK).
``mrml_logic``: volume / ROI / segmentation nodes <-> numpy (VTK + MRML classes that ``slicer-core``
also has). Import the submodules directly; this package imports nothing so that ``engine`` stays
usable where VTK is absent.
"""
