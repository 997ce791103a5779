"""vadkit from Python: train RTFM on extracted features, score the validation videos, evaluate.

Run it in a directory holding train.csv, val.csv, annotations.csv and feats/ (the features
`vadkit extract` wrote, or `vadkit.extract_videos`).
"""

import vadkit
from vadkit.io.scores import read_scores

cfg = vadkit.TrainConfig(
    model="rtfm",  # one of vadkit.list_models()
    train="train.csv",
    features="feats",
    out="runs/rtfm",
    val="val.csv",
    annotations="annotations.csv",
    steps=50,  # a first try; the papers train 15000 steps (the default)
    eval_every=25,
    batch_size=8,  # normal (and abnormal) videos per step; RTFM's default is 32
)
result = vadkit.train(cfg)  # runs/rtfm: best/last.safetensors, log.jsonl, config.json
print(f"best ROC AUC {result.best_roc_auc:.3f} at step {result.best_step}")

run = vadkit.load_run(result.out)  # best.safetensors, model in eval mode
sources, _ = vadkit.resolve_inputs(["val.csv"], features="feats")
vadkit.score_to_dir(run, sources, "scores")  # scores/VID.npy + VID.json per video

scores = {video: frames for video, (frames, meta) in read_scores("scores").items()}
metrics = vadkit.evaluate(scores, vadkit.read_annotations("annotations.csv"))
print(f"ROC AUC {metrics['roc_auc']:.3f}, AP {metrics['average_precision']:.3f}")
