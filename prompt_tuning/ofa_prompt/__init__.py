"""Prompt tuning for OFA, the unified sequence-to-sequence multimodal model (arXiv 2208.02532)."""
from .checkpoint import build_from_official, config_from_state_dict, load_official, official_state_dict
from .generate import Trie, answer_trie, beam_search, score_candidates
from .losses import label_smoothed_loss
from .model import OFA, SIZES, OFAConfig, PromptEncoder
from .prompts import PEFT_MODES, set_trainable
from .tokenizer import OFATokenizer

__all__ = ["OFA", "OFAConfig", "SIZES", "PromptEncoder", "OFATokenizer", "PEFT_MODES", "set_trainable",
           "Trie", "answer_trie", "beam_search", "score_candidates", "label_smoothed_loss", "build_from_official",
           "config_from_state_dict", "load_official", "official_state_dict"]
