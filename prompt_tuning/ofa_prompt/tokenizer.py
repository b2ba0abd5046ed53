"""OFA's vocabulary: GPT-2 byte-level BPE mapped through fairseq's dict.txt, plus <mask>, code and bin tokens.

Official layout (research note §6.6; `tasks/ofa_task.py:93-107`, `data/ofa_dataset.py:36-48`):

    0 <s>  1 <pad>  2 </s>  3 <unk> | 4 .. 4+D-1: dict.txt line k -> id k+4 | <mask> | <code_0..C-1> | <bin_0..999>

With the released files (D = 50260, C = 8192) the bins start at 58457 and the vocabulary has 59457 entries.
Text is encoded in two steps, as fairseq does: GPT-2 BPE -> GPT-2 token ids -> dict.txt positions. The BPE runs in
the `tokenizers` package (the same byte-level BPE as GPT-2's encoder.json + vocab.bpe).
"""
import json
import re
import string
from pathlib import Path

from tokenizers import ByteLevelBPETokenizer

from common.errors import DataError

BOS, PAD, EOS, UNK = 0, 1, 2, 3
FILES = ("encoder.json", "vocab.bpe", "dict.txt")
BPE_HINT = "the BPE files are OFA-Sys/OFA utils/BPE/{encoder.json,vocab.bpe,dict.txt}"


def read_utf8(path):
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(path, f"expected UTF-8 text ({e.reason} at byte {e.start})") from None


class OFATokenizer:
    def __init__(self, bpe, dict_ids, num_codes=8192, num_bins=1000):
        """bpe: a `tokenizers` byte-level BPE; dict_ids: GPT-2 token ids in dict.txt order."""
        self.bpe = bpe
        self.gpt2_to_index = {g: i + 4 for i, g in enumerate(dict_ids)}
        self.index_to_gpt2 = {i: g for g, i in self.gpt2_to_index.items()}
        self.mask = 4 + len(dict_ids)
        self.code_start = self.mask + 1
        self.bin_start = self.code_start + num_codes
        self.num_codes, self.num_bins = num_codes, num_bins
        self.vocab_size = self.bin_start + num_bins

    @classmethod
    def from_official(cls, folder, num_codes=8192, num_bins=1000):
        """Read encoder.json, vocab.bpe and dict.txt from `folder` (OFA's utils/BPE)."""
        folder = Path(folder)
        for name in FILES:
            if not (folder / name).is_file():
                raise DataError(folder / name, "expected the OFA BPE file", hint=BPE_HINT)
        try:
            vocab = json.loads(read_utf8(folder / "encoder.json"))
        except json.JSONDecodeError as e:
            raise DataError(folder / "encoder.json", f"expected a JSON object token -> id ({e.msg})",
                            line=e.lineno) from None
        if not isinstance(vocab, dict) or not vocab:
            raise DataError(folder / "encoder.json", "expected a non-empty JSON object token -> id")
        dict_ids = []
        for i, line in enumerate(read_utf8(folder / "dict.txt").splitlines()):
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise DataError(folder / "dict.txt", f"expected '<symbol> <count>', found {line!r}", line=i + 1)
            if parts[0].isdigit():
                gid = int(parts[0])
                if gid >= len(vocab):
                    raise DataError(folder / "dict.txt", f"GPT-2 id {gid} is outside encoder.json's {len(vocab)} "
                                    "tokens", line=i + 1)
                dict_ids.append(gid)
            else:                                               # madeupword0000.. fillers keep their slot
                dict_ids.append(-1 - i)
        if not dict_ids:
            raise DataError(folder / "dict.txt", "expected one line per token, found an empty file", hint=BPE_HINT)
        bpe = ByteLevelBPETokenizer.from_file(str(folder / "encoder.json"), str(folder / "vocab.bpe"))
        return cls(bpe, dict_ids, num_codes, num_bins)

    @staticmethod
    def train_official_files(texts, folder, vocab_size=300):
        """Train a small byte-level BPE on `texts` and write it in the official three-file layout (tests, smoke)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1, show_progress=False)
        vocab_file, merges_file = bpe.save_model(str(folder))
        Path(vocab_file).rename(folder / "encoder.json")
        Path(merges_file).rename(folder / "vocab.bpe")
        size = len(json.loads((folder / "encoder.json").read_text()))
        # fairseq's dict.txt lists GPT-2 ids by corpus frequency; any order is valid, this one is reversed
        (folder / "dict.txt").write_text("".join(f"{g} {size - g}\n" for g in reversed(range(size))))
        return folder

    # ----------------------------------------------------------------------------------------------------------
    def bpe_ids(self, text):
        """Dictionary indices of `text` (no <s>/</s>); unknown GPT-2 ids -> <unk>."""
        return [self.gpt2_to_index.get(g, UNK) for g in self.bpe.encode(text).ids]

    def encode(self, text, max_tokens=None):
        """`<s>` + BPE(text) + `</s>` (research note §6.7); BPE part truncated to max_tokens."""
        ids = self.bpe_ids(text)
        return [BOS] + (ids[:max_tokens] if max_tokens else ids) + [EOS]

    def bin_token(self, k):
        if not 0 <= k < self.num_bins:
            raise ValueError(f"bin {k} outside 0..{self.num_bins - 1}")
        return self.bin_start + k

    def is_bin(self, index):
        return self.bin_start <= index < self.bin_start + self.num_bins

    def decode(self, ids):
        """Text of dictionary indices; specials dropped, bins/codes written as <bin_k>/<code_k>."""
        out, run = [], []

        def flush():
            if run:
                out.append(self.bpe.decode(run))
                run.clear()

        for i in ids:
            i = int(i)
            if i in (BOS, PAD, EOS):
                continue
            if i in self.index_to_gpt2 and self.index_to_gpt2[i] >= 0:
                run.append(self.index_to_gpt2[i])
                continue
            flush()
            if self.is_bin(i):
                out.append(f"<bin_{i - self.bin_start}>")
            elif self.code_start <= i < self.bin_start:
                out.append(f"<code_{i - self.code_start}>")
            elif i == self.mask:
                out.append("<mask>")
            else:
                out.append("<unk>")
        flush()
        return "".join(out)


def pre_caption(text, max_words):
    """OFA's text cleaning (data/ofa_dataset.py:50-84): lowercase, strip leading punctuation, '-' and '/' as
    spaces, one space between words, at most max_words words."""
    text = text.lower().lstrip(",.!?*#:;~").replace("-", " ").replace("/", " ").replace("<person>", "person")
    text = re.sub(r"\s{2,}", " ", text).rstrip("\n").strip(" ")
    return " ".join(text.split(" ")[:max_words])


def strip_punctuation(text):
    """Caption hypotheses and targets without punctuation (utils/eval_utils.py:48-55)."""
    return text.translate(str.maketrans("", "", string.punctuation)).strip()
