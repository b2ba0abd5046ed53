"""Instance-wise Prompt Tuning (arXiv 2206.01958) with prompt tuning / P-tuning v2 / fine-tuning baselines."""
from .encoder import Encoder, EncoderConfig, load_pretrained
from .model import METHODS, PromptClassifier, build_method
from .optim import RowwiseAdamW
from .prompts import (
    BiLSTMGenerator,
    DeepPrompt,
    InputPrompt,
    InstancePrefix,
    InstancePrompt,
    InstanceTable,
    MLPGenerator,
    TextCNNGenerator,
)
from .tokenizer import Tokenizer

__all__ = ["Encoder", "EncoderConfig", "load_pretrained", "METHODS", "PromptClassifier", "build_method",
           "BiLSTMGenerator", "DeepPrompt", "InputPrompt", "InstancePrefix", "InstancePrompt", "InstanceTable",
           "MLPGenerator", "TextCNNGenerator", "RowwiseAdamW", "Tokenizer"]
