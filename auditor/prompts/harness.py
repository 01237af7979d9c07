"""Prompts that score an item the way evaluation harnesses score multiple choice (`--accuracy`).

lm-evaluation-harness scores a multiple-choice item by the log-likelihood of each candidate
continuation after a context, and takes the argmax as the model's answer. Two of its MMLU tasks, zero
shot, on the published order of the options:

- `letter` (its `mmlu` task): the context lists the options,
      The following are multiple choice questions (with answers) about {subject}.\\n\\n
      {question.strip()}\\nA. {option 0}\\nB. {option 1}\\n...Answer:
  and the continuations are " A", " B", ... (the target delimiter " " belongs to the continuation).
- `cloze` (its `mmlu_continuation` task): the context is `Question: {question.strip()}\\nAnswer:` and
  the continuations are " {option}"; `cloze_norm` divides each log-likelihood by the option's length
  in characters before the argmax (the harness's `acc_norm`).

Here each (context + continuation) is one teacher-forced prompt; its score is the sum of the logprobs
of the continuation's tokens (the span after the context, picked like every other scored span:
auditor/prompts/align.py). The harness tokenizes context and continuation apart; a server sees the
joined text, so a token straddling the boundary is scored with the continuation. One prompt per
option per method: 2n prompts for an item with n options (n! orderings for the audit itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from auditor.input.items import LABELS, Item
from auditor.prompts.orderings import Rendered

HEADER = "The following are multiple choice questions (with answers) about {subject}.\n\n"
METHODS = ("letter", "cloze", "cloze_norm")


@dataclass(frozen=True)
class HarnessPrompts:
    """An item's harness prompts: one per option for `letter`, one per option for `cloze`."""

    letter: tuple[Rendered, ...]
    cloze: tuple[Rendered, ...]

    def all(self) -> list[Rendered]:
        """In scoring order: the letter prompts, then the cloze prompts."""
        return [*self.letter, *self.cloze]


def _continued(context: str, continuation: str) -> Rendered:
    return Rendered(context + continuation, len(context), len(context) + len(continuation))


def letter_context(item: Item) -> str:
    lines = "".join(f"{LABELS[k]}. {text}\n" for k, text in enumerate(item.options))
    return HEADER.format(subject=item.subject.replace("_", " ")) + f"{item.question.strip()}\n{lines}Answer:"


def cloze_context(item: Item) -> str:
    return f"Question: {item.question.strip()}\nAnswer:"


def harness_count(item: Item) -> int:
    """len(harness_prompts(item).all()), without rendering them."""
    return 2 * len(item.options)


def harness_prompts(item: Item) -> HarnessPrompts:
    letter, cloze = letter_context(item), cloze_context(item)
    return HarnessPrompts(
        letter=tuple(_continued(letter, f" {LABELS[k]}") for k in range(len(item.options))),
        cloze=tuple(_continued(cloze, f" {text}") for text in item.options),
    )
