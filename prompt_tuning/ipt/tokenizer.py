"""Tokenisation with the `tokenizers` library from a checkpoint's own files, and padded batches."""
from pathlib import Path

import torch

from common.errors import DataError


class Tokenizer:
    """The checkpoint's tokenizer: tokenizer.json, else vocab.txt (WordPiece) or vocab.json + merges.txt (BPE).

    `encode(text_a, text_b)` adds the special tokens the checkpoint was trained with ([CLS] a [SEP] b [SEP] or
    <s> a </s></s> b </s>) and truncates the longer text first to `max_length`.
    """

    def __init__(self, folder, max_length=128, lowercase=True):
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers.implementations import BertWordPieceTokenizer, ByteLevelBPETokenizer
        folder = Path(folder)
        if (folder / "tokenizer.json").is_file():
            self.tok = HFTokenizer.from_file(str(folder / "tokenizer.json"))
        elif (folder / "vocab.txt").is_file():
            self.tok = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=lowercase)
        elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            bpe = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
            from tokenizers.processors import RobertaProcessing
            bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")),
                                                              ("<s>", bpe.token_to_id("<s>")))
            self.tok = bpe
        else:
            raise DataError(folder, "no tokenizer.json, vocab.txt or vocab.json + merges.txt",
                            hint="the backbone folder must hold the checkpoint's tokenizer files")
        self.tok.no_padding()
        self.tok.enable_truncation(max_length)
        self.max_length = max_length
        vocab = self.tok.get_vocab()
        self.mask_token = "<mask>" if "<mask>" in vocab else "[MASK]"
        self.pad_token = "<pad>" if "<pad>" in vocab else "[PAD]"
        self.pad_id, self.mask_id = vocab.get(self.pad_token, 0), vocab.get(self.mask_token)

    def token_id(self, word):
        """Id of a verbalizer label word: the single token of ' word' (BPE) or 'word' (WordPiece)."""
        ids = self.tok.encode(word, add_special_tokens=False).ids
        spaced = self.tok.encode(" " + word, add_special_tokens=False).ids
        ids = spaced if len(spaced) == 1 else ids
        unk = self.tok.token_to_id("[UNK]")
        unk = self.tok.token_to_id("<unk>") if unk is None else unk
        if len(ids) != 1 or ids[0] == unk:
            raise ValueError(f"label word {word!r} is {len(ids)} tokens or unknown; a verbalizer needs "
                             "single-token words in the vocabulary")
        return ids[0]

    def __call__(self, pairs):
        """[(text_a, text_b or None)] -> dict of [B, T] int64 tensors input_ids, attention_mask, token_type_ids."""
        encs = [self.tok.encode(a, b) if b is not None else self.tok.encode(a) for a, b in pairs]
        T = max(len(e.ids) for e in encs)
        ids = torch.full((len(encs), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encs), T), dtype=torch.long)
        types = torch.zeros((len(encs), T), dtype=torch.long)
        for i, e in enumerate(encs):
            n = len(e.ids)
            ids[i, :n], mask[i, :n], types[i, :n] = torch.tensor(e.ids), 1, torch.tensor(e.type_ids)
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
