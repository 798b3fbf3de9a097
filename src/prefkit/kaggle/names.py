"""Kaggle's naming rules, checked before anything is built (the kaggle client checks them only on upload).

Datasets: the slug and the title are 6 to 50 characters (the client's `dataset_create_new` refuses others).
Owners (the OWNER of every OWNER/SLUG): a Kaggle username or organisation, letters and digits, with single
hyphens between them (organisations such as `qwen-lm`); no spaces, dots, underscores or other punctuation.
Kernels: the title is at least 5 characters and must resolve to the id's slug; Kaggle turns the title into a
clean-URL slug (lowercase, each run of other characters one "-") and, where that differs from the id, makes the
kernel under the title's slug with only a warning, after which every call with the id fails.
"""

from __future__ import annotations

import re

from prefkit.errors import PrefkitError


def slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


OWNER = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*")


def _split(ref: str | None, key: str, example: str) -> tuple[str, str]:
    if not ref or ref.count("/") != 1 or not all(ref.split("/")):
        raise PrefkitError(f"{key} must be set to OWNER/SLUG (e.g. {key}={example}); got {ref!r}")
    owner, slug = ref.split("/")
    if not OWNER.fullmatch(owner):
        raise PrefkitError(f"{key} {ref!r}: the owner {owner!r} is not a Kaggle username: letters and digits (single "
                           "hyphens between them), no spaces or other punctuation; use your Kaggle username, as in "
                           "kaggle.com/USERNAME")
    return owner, slug


def dataset_title(ref: str | None, title: str | None) -> str:
    """The dataset's title (given, or made from the slug), after checking both against Kaggle's rules."""
    _, slug = _split(ref, "kaggle.dataset", "me/prefkit-gemma2-folds")
    if not 6 <= len(slug) <= 50 or slugify(slug) != slug:
        raise PrefkitError(f"kaggle.dataset {ref!r}: Kaggle wants a dataset slug of 6 to 50 lowercase letters, digits "
                           f"and dashes (got {len(slug)} characters{'' if slugify(slug) == slug else ', not a clean slug'})")
    title = title or slug.replace("-", " ")
    if not 6 <= len(title) <= 50:
        raise PrefkitError(f"dataset title {title!r}: Kaggle wants 6 to 50 characters (set kaggle.title)")
    return title


def kernel_title(ref: str | None, title: str | None) -> str:
    """The kernel's title (given, or made from the slug); it must resolve to the id's slug."""
    _, slug = _split(ref, "kaggle.kernel", "me/prefkit-infer")
    title = title or slug.replace("-", " ")
    if len(title) < 5:
        raise PrefkitError(f"kernel title {title!r}: Kaggle wants at least 5 characters (set kaggle.title)")
    if slugify(title) != slug:
        raise PrefkitError(f"kernel title {title!r} resolves to the slug {slugify(title)!r}, not {slug!r} of kaggle.kernel "
                           f"{ref!r}: Kaggle would make the kernel under the title's slug. Give a title such as "
                           f"{slug.replace('-', ' ')!r}, or set kaggle.kernel to OWNER/{slugify(title)}")
    return title
