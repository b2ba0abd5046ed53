"""BVTON (Boosted Virtual Try-on, arXiv 2411.01593), built from the abstract: see README.md."""
from .losses import VGGPerceptual, flow_loss, layered_bce, mask_stage_loss, second_order_smoothness
from .model import BVTON, CompositionalFlow, LayeredMaskGenerator, Synthesizer, compose_parts, layered_log_visibility

__all__ = ["BVTON", "CompositionalFlow", "LayeredMaskGenerator", "Synthesizer", "compose_parts",
           "layered_log_visibility", "VGGPerceptual", "flow_loss", "layered_bce", "mask_stage_loss",
           "second_order_smoothness"]
