"""DAFlow / SDAFN (Bai et al., ECCV 2022, arXiv 2207.09161): single-stage try-on with deformable attention flows."""
from .losses import DAFlowLoss, VGG19Features, gram
from .model import DAFlowNet, FeatureEncoder, MFEBlock, RefinePyramid, SDAFNet

__all__ = ["DAFlowLoss", "DAFlowNet", "FeatureEncoder", "MFEBlock", "RefinePyramid", "SDAFNet", "VGG19Features",
           "gram"]
