"""How `schema_linking` reads a policy's answers: greedy decoding within the answer's
alphabet, in batches, each answer rendered back to the paper's text
(`###Tables: …;###Columns: …;`) for `core.data.schema_answers`' metrics.

Greedy decoding is memlab's choice for evaluation; the paper sampled one answer at
temperature 0.4.
"""

from __future__ import annotations

import torch

from core.data.schema_prompts import END, PAD, EncodedQuestions, SchemaVocab, render
from core.training.grpo import generate_answers

DECODE_BATCH = 256


def decode_answers(
    model: torch.nn.Module, questions: EncodedQuestions, vocab: SchemaVocab, length: int
) -> list[str]:
    """Greedy answers of at most `length` tokens to every question, rendered as text, on
    the model's own device and in whatever mode the caller left it (eval for scoring)."""
    device = next(model.parameters()).device
    alphabet = vocab.answer_alphabet().to(device)
    texts: list[str] = []
    with torch.no_grad():
        for start in range(0, len(questions), DECODE_BATCH):
            prompts = questions.prompts[start : start + DECODE_BATCH].to(device)  # (B, P)
            answers = generate_answers(
                model, prompts, length, alphabet, vocab.id(END), vocab.id(PAD)
            ).cpu()  # (B, L)
            for offset, row in enumerate(answers.tolist()):
                texts.append(render(row, questions.slot_names[start + offset], vocab))
    return texts
