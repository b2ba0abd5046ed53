"""Simple-HGN (Lv et al., KDD 2021, arXiv 2112.14936) and the HGB benchmark protocol, in plain PyTorch."""
from .model import GCN, Graph, SimpleHGN, SimpleHGNConv, SimpleHGNLinkPredictor, TypeProjection, build_model

__all__ = ["GCN", "Graph", "SimpleHGN", "SimpleHGNConv", "SimpleHGNLinkPredictor", "TypeProjection",
           "build_model"]
