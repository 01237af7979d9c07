"""Why a chat-only endpoint cannot be audited: one paragraph, for the probe to show before any spending."""

from __future__ import annotations

CHAT_ONLY_REASON = (
    "This endpoint only offers chat completions, and this audit cannot run on them. The method scores "
    "every ordering of an item's options by the log-probabilities the model gives to the prompt's own "
    "tokens (teacher forcing over the options block), so it needs an API that returns log-probabilities "
    "for the prompt text: completions with echo + logprobs (vLLM, SGLang, llama-cpp-python, Together, "
    "OpenAI's davinci-002/babbage-002) or a native prefill-logprobs route (vLLM prompt_logprobs, SGLang "
    "/generate, TGI decoder_input_details). Chat APIs return log-probabilities only for tokens the model "
    "generates (top_logprobs of its answer), and a chat template wraps the prompt in role markup; "
    "generating answers instead would measure accuracy, not which option order the model has memorised. "
    "Point --base-url at a completions endpoint of the same model, or serve the weights yourself with vLLM."
)


def explain_chat_only() -> str:
    """The one-paragraph reason this method needs prompt logprobs, for chat-only endpoints."""
    return CHAT_ONLY_REASON
