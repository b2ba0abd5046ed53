"""The paper's metrics as the official evaluation computes them (utils/eval_utils.py, "EU").

* RefCOCO/+/g Acc@0.5 (EU:173-203, tasks/mm_tasks/refcoco.py:96-124): predicted bins -> pixels of the original
  image, hit when IoU >= 0.5 with a positive overlap.
* SNLI-VE accuracy and the VQA score (EU:103-170): the predicted answer's score in the question's reference
  dict (0 when absent).
"""
import math

import torch


def bins_to_box(tokens, tokenizer, ratio, max_image_size=512):
    """4 bin token ids -> (x0, y0, x1, y1) in original pixels: k / (num_bins - 1) * max_image_size / ratio
    (tasks/mm_tasks/refcoco.py:116-121). Non-bin tokens give None."""
    if len(tokens) < 4 or not all(tokenizer.is_bin(t) for t in tokens[:4]):
        return None
    v = [(t - tokenizer.bin_start) / (tokenizer.num_bins - 1) * max_image_size for t in tokens[:4]]
    return (v[0] / ratio[0], v[1] / ratio[1], v[2] / ratio[0], v[3] / ratio[1])


def box_iou(a, b):
    """IoU of two (x0, y0, x1, y1) boxes, and whether they overlap at all."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0, False
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union, True


def grounding_hits(pred_boxes, gt_boxes, threshold=0.5):
    """1.0 per prediction with IoU >= threshold and a positive overlap (EU:190-203); None predictions miss."""
    hits = []
    for p, g in zip(pred_boxes, gt_boxes, strict=True):
        if p is None:
            hits.append(0.0)
            continue
        iou, overlap = box_iou(p, [float(x) for x in g])
        hits.append(float(overlap and iou >= threshold))
    return hits


def answer_scores(predictions, references):
    """VQA score / accuracy: the reference dict's score of each predicted answer (EU:103-170)."""
    return [float(refs.get(p, 0.0)) for p, refs in zip(predictions, references, strict=True)]


def mean(values):
    return float(torch.tensor(values, dtype=torch.float64).mean()) if values else float("nan")


# -----------------------------------------------------------------------------------------------------------------
# captioning: BLEU-4 and CIDEr-D as pycocoevalcap computes them (the scorers run_scripts/caption/coco_eval.py uses)

def _ngrams(words, n=4):
    counts = {}
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            g = tuple(words[i:i + k])
            counts[g] = counts.get(g, 0) + 1
    return counts


def bleu(hypotheses, references, n=4):
    """Corpus BLEU-1..n (pycocoevalcap bleu_scorer, option "closest"): clipped n-gram counts summed over the corpus,
    the closest reference length per sentence, smoothing constants 1e-15 / 1e-9, brevity penalty.
    hypotheses: list of str; references: list of list of str (already tokenised, space-separated)."""
    tiny, small = 1e-15, 1e-9
    testlen = reflen = 0
    guess, correct = [0] * n, [0] * n
    for hyp, refs in zip(hypotheses, references, strict=True):
        words = hyp.split()
        maxref = {}
        lens = []
        for r in refs:
            rw = r.split()
            lens.append(len(rw))
            for g, c in _ngrams(rw, n).items():
                maxref[g] = max(maxref.get(g, 0), c)
        testlen += len(words)
        reflen += min((abs(length - len(words)), length) for length in lens)[1]
        for g, c in _ngrams(words, n).items():
            correct[len(g) - 1] += min(maxref.get(g, 0), c)
        for k in range(n):
            guess[k] += max(0, len(words) - k)
    scores, prod = [], 1.0
    ratio = (testlen + tiny) / (reflen + small)
    for k in range(n):
        prod *= (correct[k] + tiny) / (guess[k] + small)
        score = prod ** (1.0 / (k + 1))
        scores.append(score * math.exp(1 - 1 / ratio) if ratio < 1 else score)
    return scores


def cider_d(hypotheses, references, n=4, sigma=6.0):
    """CIDEr-D (pycocoevalcap cider_scorer): tf-idf n-gram vectors with document frequencies over the references,
    clipped cosine similarity times a Gaussian length penalty (sigma 6), averaged over n-gram orders and references,
    times 10. As the reference code, the "length" of a sentence is its number of bigrams."""
    refs_counts = [[_ngrams(r.split(), n) for r in refs] for refs in references]
    df = {}
    for refs in refs_counts:
        for g in {g for r in refs for g in r}:
            df[g] = df.get(g, 0) + 1
    log_n = math.log(float(len(refs_counts)))

    def vec(counts):
        v = [{} for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for g, tf in counts.items():
            k = len(g) - 1
            v[k][g] = tf * (log_n - math.log(max(1.0, df.get(g, 0.0))))
            norm[k] += v[k][g] ** 2
            if k == 1:
                length += tf
        return v, [math.sqrt(x) for x in norm], length

    scores = []
    for hyp, refs in zip(hypotheses, refs_counts, strict=True):
        vh, nh, lh = vec(_ngrams(hyp.split(), n))
        total = [0.0] * n
        for r in refs:
            vr, nr, lr = vec(r)
            for k in range(n):
                val = sum(min(w, vr[k].get(g, 0.0)) * vr[k].get(g, 0.0) for g, w in vh[k].items())
                if nh[k] != 0 and nr[k] != 0:
                    val /= nh[k] * nr[k]
                total[k] += val * math.exp(-((lh - lr) ** 2) / (2 * sigma ** 2))
        scores.append(sum(total) / n / len(refs) * 10.0)
    return sum(scores) / len(scores), scores


def java_caption_metrics(hypotheses, references, which=("meteor", "spice")):
    """METEOR and SPICE through pycocoevalcap's Java scorers (what run_scripts/caption/coco_eval.py reports), on the
    same lowercased, punctuation-free words as `bleu` and `cider_d`.

    Returns ({name: score}, {name: why it was skipped}). Needs `java` on PATH; SPICE also downloads Stanford
    CoreNLP on first use, so offline it is skipped with the download error as the reason."""
    import shutil
    unknown = set(which) - {"meteor", "spice"}
    if unknown:
        raise ValueError(f"unknown Java caption metric(s) {sorted(unknown)}; choose meteor, spice")
    scores, skipped = {}, {}
    if shutil.which("java") is None:
        return scores, {name: "no java on PATH" for name in which}
    gts = {i: list(refs) for i, refs in enumerate(references)}
    res = {i: [h] for i, h in enumerate(hypotheses)}
    for name in which:
        try:
            if name == "meteor":
                from pycocoevalcap.meteor.meteor import Meteor
                scores[name] = float(Meteor().compute_score(gts, res)[0])
            else:
                from pycocoevalcap.spice.spice import Spice
                scores[name] = float(Spice().compute_score(gts, res)[0])
        except Exception as e:                                      # noqa: BLE001 - JVM, download or jar errors
            skipped[name] = f"{type(e).__name__}: {str(e)[:200]}"
    return scores, skipped
