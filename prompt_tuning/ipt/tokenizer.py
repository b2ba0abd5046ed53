"""Tokenisation with the `tokenizers` library from a checkpoint's own files, and padded batches."""
from pathlib import Path

import torch

from common.errors import DataError

MASK = object()  # a template part that is the tokenizer's mask token


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
        return self.pad([(e.ids, e.type_ids) for e in encs])

    def special_ids(self):
        """(start, end) ids of a single sequence: [CLS]/[SEP] or <s>/</s>."""
        vocab = self.tok.get_vocab()
        for start, end in (("[CLS]", "[SEP]"), ("<s>", "</s>")):
            if start in vocab and end in vocab:
                return vocab[start], vocab[end]
        raise DataError("tokenizer", "no [CLS]/[SEP] or <s>/</s> in the vocabulary")

    def encode_template(self, parts):
        """One sequence from template parts [(text or MASK, shortenable)] (OpenPrompt's tokenizer wrapper):
        each part tokenised on its own (BPE: with a leading space after the first), shortenable parts cut from
        their ends in order until start + parts + end fit `max_length` (`truncate_from_head`). -> ids."""
        bpe = "<s>" in self.tok.get_vocab()
        pieces = []
        for i, (text, shortenable) in enumerate(parts):
            if text is MASK:
                ids = [self.mask_id]
            else:
                ids = self.tok.encode(" " + text if bpe and i else text, add_special_tokens=False).ids
            pieces.append([ids, shortenable])
        excess = sum(len(ids) for ids, _ in pieces) + 2 - self.max_length
        for piece in pieces:
            if excess <= 0:
                break
            if piece[1]:
                cut = min(excess, len(piece[0]))
                piece[0], excess = piece[0][: len(piece[0]) - cut], excess - cut
        if excess > 0:
            raise ValueError(f"the template's fixed words alone exceed max_length {self.max_length}")
        start, end = self.special_ids()
        return [start] + [t for ids, _ in pieces for t in ids] + [end]

    def encode_templates(self, batch_parts):
        """[[(text or MASK, shortenable)]] -> padded batch dict, token type 0 everywhere."""
        encs = [self.encode_template(parts) for parts in batch_parts]
        return self.pad([(ids, [0] * len(ids)) for ids in encs])

    def pad(self, encs):
        """[(ids, type_ids)] -> dict of [B, T] int64 tensors padded with the pad id (mask 0 there)."""
        T = max(len(ids) for ids, _ in encs)
        ids_t = torch.full((len(encs), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encs), T), dtype=torch.long)
        types = torch.zeros((len(encs), T), dtype=torch.long)
        for i, (ids, type_ids) in enumerate(encs):
            n = len(ids)
            ids_t[i, :n], mask[i, :n], types[i, :n] = torch.tensor(ids), 1, torch.tensor(type_ids)
        return {"input_ids": ids_t, "attention_mask": mask, "token_type_ids": types}
