# prefkit training kernel: rendered by `prefkit kaggle kernel train` from prefkit's kernels/train.py.
# Installs prefkit offline from the bundle dataset and runs cross-validation with the bundled config on the
# competition's training data, one process per GPU; the fold models land in /kaggle/working/run, ready to
# be bundled for an inference kernel. PREFKIT_* environment variables move it off Kaggle.
import os
import shutil
import subprocess
import sys

BUNDLE = os.environ.get("PREFKIT_BUNDLE", "$bundle_mount")
TRAIN = os.environ.get("PREFKIT_TRAIN", "$train_path")
WORK = os.environ.get("PREFKIT_WORK", "/kaggle/working/run")
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

if shutil.which("nvidia-smi"):
    sh(["nvidia-smi"])
else:
    print("nvidia-smi not found: no GPU, running on the CPU", flush=True)

import torch  # noqa: E402

gpus = torch.cuda.device_count()
args = ["cv", os.path.join(BUNDLE, "run", "config.yaml"), f"data.train={TRAIN}", f"output_dir={WORK}"]
if os.path.isdir(os.path.join(BUNDLE, "tokenizer")):
    args.append("template.tokenizer=" + os.path.join(BUNDLE, "tokenizer"))
if gpus >= 2:
    sh([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus), "-m", "prefkit.cli", "--", *args])
else:
    sh([sys.executable, "-m", "prefkit.cli", *args])
