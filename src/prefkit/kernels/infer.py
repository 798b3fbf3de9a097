
# Inference: every model of the bundled run predicts the test set (fold ensemble, A/B swap TTA) and
# submission.csv is written where the competition expects it.
TEST = os.environ.get("PREFKIT_TEST", "$test_path")
OUT = os.environ.get("PREFKIT_OUT", "/kaggle/working/submission.csv")
WORK = os.environ.get("PREFKIT_WORK", "/kaggle/working/prefkit")
prefkit_run(["predict", "--run", os.path.join(BUNDLE, "run"), "--test", TEST, "--out", OUT, f"output_dir={WORK}", *TOKENIZER])
print("submission:", OUT, flush=True)
