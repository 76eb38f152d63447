"""Point-E (arXiv 2212.08751): text -> synthetic view -> coarse point cloud -> upsampled cloud, on the shared parts."""

from .config import PointDenoiserConfig, PointEConfig
from .diffusion import PointCloudDiffusion
from .model import PointCloudOutput, PointE
from .transformer import CloudCondition, PointDenoiser, TokenCondition

__all__ = ["CloudCondition", "PointCloudDiffusion", "PointCloudOutput", "PointDenoiser", "PointDenoiserConfig",
           "PointE", "PointEConfig", "TokenCondition"]
