"""OFA's task data: the official TSV files (one example per line, base64 images) and the sample builders.

TSV columns as the official scripts select them with `--selected-cols` (research note §6.7):

| task    | selected columns | fields |
|---------|------------------|--------|
| refcoco | 0,4,2,3          | id, base64 image, expression, "x0,y0,x1,y1" (pixels) |
| snli_ve | 0,2,3,4,5        | id, base64 image, hypothesis, premise caption, label (entailment/contradiction/neutral) |
| caption | 1,4,2            | image id, base64 image, caption ("&&"-joined references in val/test) |
| vqa     | 0,5,2,3,4        | question id, base64 image, question, "score\\|!+answer&&...", "obj&&obj..." |

Every reader error is a `DataError` naming the file and line. Images decode lazily (the real files hold
hundreds of thousands of rows); a bad image is reported with its file and line when it is first read.
"""
import base64
import csv
import dataclasses
import io
import random
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from common.errors import DataError

from .tokenizer import BOS, EOS, PAD, pre_caption, strip_punctuation

csv.field_size_limit(sys.maxsize)

SELECTED_COLS = {"refcoco": (0, 4, 2, 3), "snli_ve": (0, 2, 3, 4, 5), "caption": (1, 4, 2), "vqa": (0, 5, 2, 3, 4)}
SNLI_ANSWERS = {"entailment": "yes", "contradiction": "no", "neutral": "maybe"}    # snli_ve_dataset.py:137-144
DATA_HINT = ("OFA's TSV files come from the OFA-Sys/OFA datasets.md downloads (RefCOCO/+/g, SNLI-VE, COCO "
             "Karpathy captions, VQA v2); point --data_root at the folder holding <task>/{train,val,test}.tsv")


@dataclasses.dataclass
class Row:
    file: Path
    line: int
    uid: str
    image_b64: str
    fields: tuple


def read_tsv(path, task, selected_cols=None):
    """Rows of an official TSV file with the task's selected columns; validates what the task's fields promise."""
    path = Path(path)
    cols = tuple(selected_cols or SELECTED_COLS[task])
    if not path.is_file():
        raise DataError(path, f"expected the {task} TSV file", hint=DATA_HINT)
    rows = []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for i, parts in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)):
                if not parts or parts == [""]:
                    continue
                if len(parts) <= max(cols):
                    raise DataError(path, f"expected at least {max(cols) + 1} tab-separated columns (selected "
                                    f"{','.join(map(str, cols))}), found {len(parts)}", line=i + 1)
                values = [parts[c] for c in cols]
                rows.append(Row(path, i + 1, values[0], values[1], tuple(_check_fields(task, values[2:], path, i + 1))))
    except UnicodeDecodeError as e:
        raise DataError(path, f"expected UTF-8 text ({e.reason} at byte {e.start})") from None
    if not rows:
        raise DataError(path, "expected one example per line, found an empty file", hint=DATA_HINT)
    return rows


def _check_fields(task, values, path, line):
    if task == "refcoco":
        expr, box = values
        try:
            x0, y0, x1, y1 = (float(v) for v in box.split(","))
        except ValueError:
            raise DataError(path, f"expected a box 'x0,y0,x1,y1', found {box!r}", line=line) from None
        if not all(np.isfinite([x0, y0, x1, y1])) or x1 <= x0 or y1 <= y0 or min(x0, y0) < 0:
            raise DataError(path, f"expected a box with 0 <= x0 < x1 and 0 <= y0 < y1, found {box!r}", line=line)
        return expr, (x0, y0, x1, y1)
    if task == "snli_ve":
        hypothesis, premise, label = values
        if label not in SNLI_ANSWERS:
            raise DataError(path, f"expected a label in {sorted(SNLI_ANSWERS)}, found {label!r}", line=line)
        return hypothesis, premise, label
    if task == "caption":
        return (values[0],)
    if task == "vqa":
        question, answers, objects = values
        refs = {}
        for item in answers.split("&&"):
            score, sep, ans = item.partition("|!+")
            try:
                value = float(score)
            except ValueError:
                value = float("nan")
            if not sep or not ans or not np.isfinite(value) or not 0 <= value <= 1:
                raise DataError(path, f"expected answers 'score|!+answer&&...' with scores in [0, 1], found "
                                f"{item!r}", line=line)
            refs[ans] = value
        return question, refs, [o for o in objects.split("&&") if o]
    raise ValueError(f"unknown task {task!r}")


def decode_image(row):
    """RGB PIL image of a row, or a DataError naming the file and line."""
    try:
        image = Image.open(io.BytesIO(base64.urlsafe_b64decode(row.image_b64)))
        image.load()
    except Exception as e:                                          # noqa: BLE001 - binascii, PIL, truncated files
        raise DataError(row.file, f"expected a base64-encoded image ({type(e).__name__}: {e})", line=row.line) from None
    if min(image.size) == 0:
        raise DataError(row.file, "expected a non-empty image", line=row.line)
    return image.convert("RGB")


def image_tensor(image, size):
    """Bicubic resize to size x size, ToTensor, Normalize(0.5, 0.5) (caption_dataset.py:102-114; RefCOCO §6.8)."""
    x = np.asarray(image.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    return (torch.from_numpy(x).permute(2, 0, 1) - 0.5) / 0.5


# -----------------------------------------------------------------------------------------------------------------
# samples: source tokens, decoder input, target, (constraint mask), per task

class TaskDataset(torch.utils.data.Dataset):
    """Samples of one task file. Each: dict(src, prev, target, image, and task-specific eval fields)."""

    def __init__(self, rows, task, tokenizer, patch_size, max_src_len=80, max_tgt_len=20, max_image_size=512,
                 answers=None, add_caption=True, add_object=True):
        self.rows, self.task, self.tok = rows, task, tokenizer
        self.patch_size, self.max_src_len, self.max_tgt_len = patch_size, max_src_len, max_tgt_len
        self.max_image_size = max_image_size
        self.add_caption, self.add_object = add_caption, add_object
        if task == "snli_ve":
            answers = ["yes", "no", "maybe"]
        self.answers = answers
        self.answer_tokens = None if answers is None else [tokenizer.bpe_ids(" " + a) + [EOS] for a in answers]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        image = decode_image(row)
        w, h = image.size
        sample = {"uid": row.uid, "image": image_tensor(image, self.patch_size)}
        tok = self.tok
        if self.task == "refcoco":
            expr, box = row.fields
            text = pre_caption(expr, self.max_src_len)
            src = tok.encode(f' which region does the text " {text} " describe?')   # refcoco_dataset.py:121-122
            ratio = (self.patch_size / w, self.patch_size / h)
            scaled = [box[0] * ratio[0], box[1] * ratio[1], box[2] * ratio[0], box[3] * ratio[1]]
            bins = [tok.bin_token(int(round(min(v / self.max_image_size, 1.0) * (tok.num_bins - 1))))
                    for v in scaled]
            sample.update(src=src, prev=[BOS] + bins, target=bins + [EOS], box=torch.tensor(box), ratio=ratio)
        elif self.task == "caption":
            src = tok.encode(" what does the image describe?")                      # caption_dataset.py:116-117
            refs = [strip_punctuation(pre_caption(c, self.max_tgt_len)) for c in row.fields[0].split("&&")]
            target = tok.bpe_ids(" " + refs[0])[:self.max_tgt_len] + [EOS]
            sample.update(src=src, prev=[BOS] + target[:-1], target=target, refs=refs)
        else:                                                                       # prev_output answer tasks
            if self.task == "snli_ve":
                hypothesis, premise, label = row.fields
                hyp = pre_caption(hypothesis, self.max_src_len)
                if self.add_caption:
                    text = f' can image and text1 " {pre_caption(premise, self.max_src_len)} " imply text2 " {hyp} "?'
                else:
                    text = f' does the image describe " {hyp} "?'
                answer, refs = SNLI_ANSWERS[label], {SNLI_ANSWERS[label]: 1.0}
            else:
                question, refs, objects = row.fields
                q = pre_caption(question, self.max_src_len).rstrip("?") + "?"
                text = " " + q
                if self.add_object and objects:
                    text += " object: " + " ".join(objects[:30])
                answer = max(refs, key=refs.get)
            src = tok.encode(text)
            prompt = src[:-1]                                  # the source without </s> (prompt_type=prev_output)
            ans = tok.bpe_ids(" " + answer) + [EOS]
            sample.update(src=src, prev=prompt + ans[:-1], target=[PAD] * (len(prompt) - 1) + ans,
                          prompt=prompt, refs=refs, answer=answer,
                          weight=refs[answer] if self.task == "vqa" else 1.0)
        return sample


def collate(samples):
    def pad(seqs):
        out = torch.full((len(seqs), max(map(len, seqs))), PAD, dtype=torch.long)
        for i, s in enumerate(seqs):
            out[i, :len(s)] = torch.tensor(s)
        return out

    batch = {"src": pad([s["src"] for s in samples]), "prev": pad([s["prev"] for s in samples]),
             "target": pad([s["target"] for s in samples]), "image": torch.stack([s["image"] for s in samples]),
             "weight": torch.tensor([s.get("weight", 1.0) for s in samples]), "samples": samples}
    return batch


# -----------------------------------------------------------------------------------------------------------------
# generated data in the real format

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle", "cross")


def draw_shape(color, shape, size, rng):
    """A size x size image: one coloured shape at a random place and scale on a noisy grey background.
    Returns the image and its box (x0, y0, x1, y1)."""
    bg = rng.integers(90, 150, size=(size, size, 3)).astype(np.uint8)
    image = Image.fromarray(bg)
    d = ImageDraw.Draw(image)
    s = int(rng.integers(size // 3, size // 2 + 1))
    x0, y0 = int(rng.integers(0, size - s)), int(rng.integers(0, size - s))
    box = (x0, y0, x0 + s, y0 + s)
    fill = COLORS[color]
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    elif shape == "triangle":
        d.polygon([(x0, y0 + s), (x0 + s, y0 + s), (x0 + s // 2, y0)], fill=fill)
    else:
        t = max(2, s // 4)
        d.rectangle((x0 + s // 2 - t, y0, x0 + s // 2 + t, y0 + s), fill=fill)
        d.rectangle((x0, y0 + s // 2 - t, x0 + s, y0 + s // 2 + t), fill=fill)
    return image, box


def encode_image(image):
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.urlsafe_b64encode(buf.getvalue()).decode()


def write_synthetic_vqa(root, num_pretrain=384, num_train=256, num_val=64, num_test=128, size=32, seed=0):
    """Generated VQA-format TSVs (official columns 0,5,2,3,4) for the smoke run. Returns the folder.

    Planted signal, so that prompts alone can learn the task and a frozen model cannot: every image shows one
    of 4 colours x 4 shapes. `pretrain.tsv` teaches a backbone three questions: " what color is it?" -> the
    colour, " what shape is it?" -> the shape, and " what is it?" -> a WRONG colour (the next one in
    `COLORS`: a deliberately conflicting habit). The prompt-tuning task (`train/val/test.tsv`) asks the same
    " what is it?" and wants the TRUE colour. The frozen backbone answers it with the shifted colour, so without
    trained prompts it scores near 0; it does know the true colour (it answers " what color is it?"), so
    prompts that switch the question to "colour mode" solve the task.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(COLORS)

    def rows(n, kind):
        out = []
        for k in range(n):
            color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
            image, _ = draw_shape(color, shape, size, rng)
            if kind == "pretrain":
                shifted = names[(names.index(color) + 1) % len(names)]
                q, a = [("what color is it?", color), ("what shape is it?", shape), ("what is it?", shifted)][k % 3]
            else:
                q, a = "what is it?", color
            # official column order: 0 question id, 1 image id, 2 question, 3 answers, 4 objects, 5 image
            out.append([f"{kind}{k}", f"img{kind}{k}", q, f"1.0|!+{a}", "", encode_image(image)])
        return out

    for name, n in (("pretrain", num_pretrain), ("train", num_train), ("val", num_val), ("test", num_test)):
        with open(root / f"{name}.tsv", "w", newline="") as f:
            csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n").writerows(rows(n, name))
    return root


def write_synthetic_caption(path, num=16, size=32, seed=0):
    """Generated caption-format TSV (columns 1,4,2 selected): "a <color> <shape>", two "&&"-joined references."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    lines = []
    for k in range(num):
        color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
        image, _ = draw_shape(color, shape, size, nrng)
        caption = f"a {color} {shape}.&&the {shape} is {color}"
        lines.append("\t".join([f"row{k}", str(k), caption, "", encode_image(image)]))
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_synthetic_refcoco(path, num=16, size=64, seed=0):
    """Generated RefCOCO-format TSV (columns 0,4,2,3 selected): expression = "<color> <shape>", box in pixels."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    lines = []
    for k in range(num):
        color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
        image, box = draw_shape(color, shape, size, nrng)
        lines.append("\t".join([str(k), f"ref{k}", f"{color} {shape}", ",".join(map(str, box)), encode_image(image)]))
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)
