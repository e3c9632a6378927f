"""Connected-UNets for breast-mass segmentation on mammograms (Baccouche et al., 2021) in PyTorch/MONAI."""

__version__ = "0.1.0"
