# prefkit inference kernel: rendered by `prefkit kaggle kernel infer` from prefkit's kernels/infer.py.
# Runs offline: installs prefkit from the bundle dataset, then predicts the test set with every model of the
# bundled run (fold ensemble, A/B swap TTA), one process per GPU, and writes submission.csv.
# The PREFKIT_* environment variables move it off Kaggle (a CPU run here uses them); none is needed there.
import os
import shutil
import subprocess
import sys

BUNDLE = os.environ.get("PREFKIT_BUNDLE", "$bundle_mount")
TEST = os.environ.get("PREFKIT_TEST", "$test_path")
OUT = os.environ.get("PREFKIT_OUT", "/kaggle/working/submission.csv")
WORK = os.environ.get("PREFKIT_WORK", "/kaggle/working/prefkit")
VERSION = "$version"


def sh(cmd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


try:
    import prefkit

    installed = prefkit.__version__
except ImportError:
    installed = None
if installed != VERSION:
    wheels = os.path.join(BUNDLE, "wheels")
    names = ["prefkit"] + [w.split("-")[0] for w in sorted(os.listdir(wheels)) if not w.startswith("prefkit-")]
    # --no-deps: Kaggle's image has torch, transformers, peft and accelerate; the bundle adds what it lacks
    sh([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--find-links", wheels, *names])
else:
    print(f"prefkit {VERSION} already installed", flush=True)

if shutil.which("nvidia-smi"):
    sh(["nvidia-smi"])
else:
    print("nvidia-smi not found: no GPU, running on the CPU", flush=True)

import torch  # noqa: E402

gpus = torch.cuda.device_count()
args = ["predict", "--run", os.path.join(BUNDLE, "run"), "--test", TEST, "--out", OUT, f"output_dir={WORK}"]
if os.path.isdir(os.path.join(BUNDLE, "tokenizer")):
    args.append("template.tokenizer=" + os.path.join(BUNDLE, "tokenizer"))
if gpus >= 2:  # one process per GPU; "--" keeps torchrun from reading prefkit's flags as its own
    sh([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus), "-m", "prefkit.cli", "--", *args])
else:
    sh([sys.executable, "-m", "prefkit.cli", *args])
print("submission:", OUT, flush=True)
